// Memory limit (lib/policy/memory_limit.cc, am_set_memory_limit): an allocation that
// would take the resident heap past the limit first makes ammalloc release its
// free pages, then calls the callback (which may free, and may allocate) and
// retries once, then fails with NULL + ENOMEM (std::bad_alloc from new).
//
// Every case starts from am_reset() (nothing cached, no free resident page) and
// sets its limit relative to the heap's resident bytes at that moment
// (am_memory_usage), so the figures below are exact to the page. Large blocks
// (> 256 KiB) come straight from the page heap, which is where the limit acts.
// A guard puts the limit back to 0 (none) when each case ends.
#include <errno.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "ammalloc/ammalloc.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

size_t prop(const char* name) {
  size_t v = 0;
  REQUIRE(am_get_numeric_property(name, &v) == 1);
  return v;
}

size_t resident() {
  size_t current = 0;
  am_memory_usage(&current, nullptr);
  return current;
}

size_t peak() {
  size_t p = 0;
  am_memory_usage(nullptr, &p);
  return p;
}

struct LimitGuard {
  LimitGuard() { am_reset(); }
  ~LimitGuard() { am_set_memory_limit(0, nullptr, nullptr); }
};

void touch(void* p, size_t n) { memset(p, 0x5a, n); }

// The application's cache of evictable buffers (think KV-cache blocks) and the
// callback's record of what it was asked.
struct Cache {
  std::vector<void*> blocks;
  std::vector<size_t> evict_order;  // indices, in the order the callback frees them
  size_t block_size = 0;
  int calls = 0;
  size_t last_requested = 0;
  size_t freed_bytes = 0;
  // What the callback does besides evicting.
  bool allocate_small_inside = false;
  bool allocate_huge_inside = false;
  void* small_from_callback = nullptr;
  void* huge_from_callback = reinterpret_cast<void*>(1);
  int huge_errno = 0;

  void evict(size_t bytes) {
    for (size_t i : evict_order) {
      if (freed_bytes >= bytes) break;
      if (blocks[i] == nullptr) continue;
      am_free(blocks[i]);
      blocks[i] = nullptr;
      freed_bytes += block_size;
    }
  }
  ~Cache() {
    for (void* b : blocks) am_free(b);
    am_free(small_from_callback);
    if (huge_from_callback != reinterpret_cast<void*>(1)) am_free(huge_from_callback);
  }
};

void counting_callback(void* ctx, size_t requested) {
  auto* c = static_cast<Cache*>(ctx);
  ++c->calls;
  c->last_requested = requested;
}

void evicting_callback(void* ctx, size_t requested) {
  auto* c = static_cast<Cache*>(ctx);
  ++c->calls;
  c->last_requested = requested;
  c->evict(requested);
  if (c->allocate_small_inside) {
    // An allocation inside the callback: served normally (the memory just
    // evicted makes room), and it must not call the callback again.
    c->small_from_callback = am_malloc(100);
    if (c->small_from_callback) touch(c->small_from_callback, 100);
  }
  if (c->allocate_huge_inside) {
    // One that cannot fit: it fails at once instead of recursing.
    errno = 0;
    c->huge_from_callback = am_malloc(1024 * kMiB);
    c->huge_errno = errno;
  }
}

}  // namespace

TEST_CASE("memory limit: allocations past it fail with ENOMEM, operator new throws", "[memory_limit]") {
  LimitGuard guard;
  const size_t r0 = resident();
  am_set_memory_limit(r0 + 32 * kMiB, nullptr, nullptr);

  // A large block that can never fit.
  errno = 0;
  CHECK(am_malloc(64 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(resident() <= r0 + 32 * kMiB);

  // Fill up to the limit with 1 MiB blocks: 32 fit at most (small spans the
  // heap already had may take a little of the room).
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) {
    errno = 0;
    void* p = am_malloc(kMiB);
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      break;
    }
    touch(p, kMiB);
    blocks.push_back(p);
  }
  INFO(blocks.size() << " blocks of 1 MiB fit under a limit of resident + 32 MiB");
  CHECK(blocks.size() <= 32);
  CHECK(blocks.size() >= 30);
  CHECK(resident() <= r0 + 32 * kMiB);

  // Small objects: the room left (< 1 MiB) runs out after a few spans.
  std::vector<void*> small;
  bool small_failed = false;
  for (int i = 0; i < 200000 && !small_failed; ++i) {
    errno = 0;
    void* p = am_malloc(1000);
    if (p == nullptr) {
      small_failed = true;
      CHECK(errno == ENOMEM);
    } else {
      small.push_back(p);
    }
  }
  INFO(small.size() << " objects of 1000 bytes before the limit");
  CHECK(small_failed);
  CHECK(small.size() < 2 * 1024);  // < 1 MiB of room plus what was cached
  CHECK(resident() <= r0 + 32 * kMiB);
  // calloc and aligned allocation go through the same check.
  errno = 0;
  CHECK(am_calloc(1, 8 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(am_aligned_alloc(kMiB, 8 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);

  // The C++ path: operator new throws, nothrow new returns NULL.
  CHECK_THROWS_AS(am_new(8 * kMiB, 0), std::bad_alloc);
  CHECK(am_new_nothrow(8 * kMiB, 0) == nullptr);

  for (void* p : small) am_free(p);
  for (void* p : blocks) am_free(p);
  // The limit lifted: the same request succeeds.
  am_set_memory_limit(0, nullptr, nullptr);
  void* p = am_malloc(64 * kMiB);
  CHECK(p != nullptr);
  am_free(p);
}

TEST_CASE("memory limit: the AMMALLOC_MEMORY_LIMIT option sets the same limit", "[memory_limit]") {
  LimitGuard guard;
  const size_t r0 = resident();
  REQUIRE(am_option_set("AMMALLOC_MEMORY_LIMIT", static_cast<long long>(r0 + 16 * kMiB)) == 0);
  errno = 0;
  CHECK(am_malloc(32 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);
  void* p = am_malloc(8 * kMiB);
  CHECK(p != nullptr);
  am_free(p);
  REQUIRE(am_option_set("AMMALLOC_MEMORY_LIMIT", 0) == 0);
  p = am_malloc(32 * kMiB);
  CHECK(p != nullptr);
  am_free(p);
}

TEST_CASE("memory limit: free resident pages are released before the callback is called", "[memory_limit]") {
  LimitGuard guard;
  Cache cache;
  const size_t r0 = resident();
  am_set_memory_limit(r0 + 64 * kMiB, counting_callback, &cache);

  // 40 MiB allocated, touched and freed: free in the page heap, still resident.
  void* p = am_malloc(40 * kMiB);
  REQUIRE(p != nullptr);
  touch(p, 40 * kMiB);
  am_free(p);
  CHECK(resident() >= r0 + 40 * kMiB);

  // 48 MiB does not fit in the 40 MiB free span, and 40 + 48 resident would be
  // 24 MiB past the limit: only releasing the free span first makes room
  // (48 <= 64). A callback call would mean that step was skipped.
  void* q = am_malloc(48 * kMiB);
  CHECK(q != nullptr);
  CHECK(cache.calls == 0);
  CHECK(resident() <= r0 + 64 * kMiB);
  CHECK(resident() >= r0 + 48 * kMiB);
  // The 40 MiB span went back to the OS: only the new 48 MiB is resident.
  CHECK(resident() <= r0 + 48 * kMiB);
  CHECK(prop("ammalloc.pageheap_unmapped_bytes") >= 40 * kMiB);
  if (q) touch(q, 48 * kMiB);
  am_free(q);
}

TEST_CASE("memory limit: the callback evicts cached blocks and the retried allocation succeeds", "[memory_limit]") {
  LimitGuard guard;
  Cache cache;
  // Eight 4 MiB "KV-cache" blocks; the callback evicts in LRU order, which is
  // not address order: here the even blocks first, so the freed memory is in
  // 4 MiB pieces between live blocks.
  cache.block_size = 4 * kMiB;
  for (int i = 0; i < 8; ++i) {
    void* b = am_malloc(cache.block_size);
    REQUIRE(b != nullptr);
    touch(b, cache.block_size);
    cache.blocks.push_back(b);
  }
  cache.evict_order = {0, 2, 4, 6, 1, 3, 5, 7};
  const size_t r0 = resident();
  am_set_memory_limit(r0 + 8 * kMiB, evicting_callback, &cache);

  SECTION("LRU eviction: the freed blocks are not neighbours") {
    // 16 MiB needs 8 MiB more than the limit allows: the callback evicts four
    // blocks (16 MiB), after which the request fits under the limit, as long
    // as the evicted pages are not still counted as resident: the retry has to
    // release what the callback freed (no single freed piece holds 16 MiB).
    void* p = am_malloc(16 * kMiB);
    CHECK(cache.calls == 1);
    CHECK(cache.last_requested == 16 * kMiB);
    CHECK(cache.freed_bytes == 16 * kMiB);
    INFO("resident " << (resident() - r0) / kMiB << " MiB above the start, limit 8 MiB above");
    CHECK(p != nullptr);
    CHECK(resident() <= r0 + 8 * kMiB);
    if (p) touch(p, 16 * kMiB);
    am_free(p);
  }
  SECTION("eviction of neighbours: the freed blocks coalesce") {
    // Blocks freed next to each other coalesce: with address-order eviction
    // the freed 16 MiB is one span the retry can use as it is.
    cache.evict_order = {0, 1, 2, 3, 4, 5, 6, 7};
    void* p = am_malloc(16 * kMiB);
    CHECK(cache.calls == 1);
    CHECK(p != nullptr);
    CHECK(resident() <= r0 + 8 * kMiB);
    am_free(p);
  }
}

TEST_CASE("memory limit: a callback that allocates works and is not re-entered", "[memory_limit]") {
  LimitGuard guard;
  Cache cache;
  cache.block_size = 4 * kMiB;
  for (int i = 0; i < 8; ++i) {
    void* b = am_malloc(cache.block_size);
    REQUIRE(b != nullptr);
    touch(b, cache.block_size);
    cache.blocks.push_back(b);
  }
  cache.evict_order = {0, 1, 2, 3, 4, 5, 6, 7};  // neighbours: the freed space coalesces
  cache.allocate_small_inside = true;
  cache.allocate_huge_inside = true;
  const size_t r0 = resident();
  am_set_memory_limit(r0 + 8 * kMiB, evicting_callback, &cache);

  void* p = am_malloc(16 * kMiB);
  CHECK(cache.calls == 1);  // the huge allocation inside did not call it again
  CHECK(cache.huge_from_callback == nullptr);
  CHECK(cache.huge_errno == ENOMEM);
  CHECK(cache.small_from_callback != nullptr);
  CHECK(p != nullptr);
  CHECK(resident() <= r0 + 8 * kMiB);
  am_free(p);

  // The callback is armed again for the next failing allocation: one call each.
  cache.allocate_small_inside = cache.allocate_huge_inside = false;
  void* q = am_malloc(64 * kMiB);  // 4 blocks left (16 MiB): not enough
  CHECK(q == nullptr);
  CHECK(cache.calls == 2);
  am_free(q);
}

TEST_CASE("memory limit: a callback that frees nothing is called once, then the allocation fails",
          "[memory_limit]") {
  LimitGuard guard;
  Cache cache;
  const size_t r0 = resident();
  am_set_memory_limit(r0 + 8 * kMiB, counting_callback, &cache);

  errno = 0;
  CHECK(am_malloc(16 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(cache.calls == 1);
  CHECK(cache.last_requested == 16 * kMiB);

  // operator new: one more callback call, then std::bad_alloc.
  CHECK_THROWS_AS(am_new(16 * kMiB, 0), std::bad_alloc);
  CHECK(cache.calls == 2);
  // An allocation that fits calls nothing.
  void* p = am_malloc(4 * kMiB);
  CHECK(p != nullptr);
  CHECK(cache.calls == 2);
  am_free(p);
  // Replacing the callback by none: failures call nothing.
  am_set_memory_limit(r0 + 8 * kMiB, nullptr, nullptr);
  errno = 0;
  CHECK(am_malloc(16 * kMiB) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(cache.calls == 2);
}

TEST_CASE("memory limit: current and peak usage, and resetting the peak", "[memory_limit]") {
  LimitGuard guard;  // am_reset: the peak starts at the current figure
  size_t current = 0, top = 0;
  am_memory_usage(&current, &top);
  CHECK(top == current);
  am_memory_usage(nullptr, nullptr);  // both optional

  void* p = am_malloc(32 * kMiB);
  REQUIRE(p != nullptr);
  touch(p, 32 * kMiB);
  CHECK(resident() >= current + 32 * kMiB);
  CHECK(peak() >= resident());
  const size_t high = peak();
  CHECK(prop("ammalloc.resident_bytes") == resident());
  CHECK(prop("ammalloc.resident_peak_bytes") == high);

  am_free(p);
  am_release_free_memory();
  CHECK(resident() < current + 32 * kMiB);
  CHECK(resident() <= current + kMiB);
  CHECK(peak() == high);  // the peak stays until reset

  am_reset_peak_memory();
  CHECK(peak() == resident());
  CHECK(prop("ammalloc.resident_peak_bytes") == resident());
}

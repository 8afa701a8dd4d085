// Out of memory (issue 13, item 3): when the OS refuses memory, for the heap
// or for ammalloc's own bookkeeping (metadata arena, pagemap and huge page map
// leaves, span records, the leak checker's table), the one request fails with
// NULL + ENOMEM (std::bad_alloc from am_new, nullptr from am_new_nothrow),
// nothing leaks, nothing aborts, and once memory is back everything allocates
// again.
//
// The refusals are injected in the os layer (os::inject_map_failures: the Nth
// map, reserve or commit call from now fails). Each N runs in a fresh process
// (this binary re-executed on a hidden case, child_process.h's run_self), so
// the heap starts empty and the init sequence's own calls are counted too; N
// goes from 1 until a run makes fewer calls than N (no failure injected).
// Two modes: only the Nth call fails (a transient refusal: retries and smaller
// reservations must get past it), or every call from the Nth on fails until
// the workload ends (memory stays short).
#include <errno.h>
#include <string.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "child_process.h"
#include "core/meta_arena.h"
#include "heap/page_heap.h"
#include "heap/page_heap_internal.h"
#include "heap/system_alloc.h"
#include "observe/heap_checker.h"
#include "option_helpers.h"
#include "os/os.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kGiB = size_t{1} << 30;

// What the requests of one workload came to. `bad` counts contract breaches:
// a NULL without ENOMEM, a block that is not zeroed (calloc) or not aligned,
// realloc losing the old block's contents.
struct Tally {
  size_t ok = 0, enomem = 0, bad = 0;
  std::string why;
  void breach(const char* what, size_t size) {
    ++bad;
    if (why.size() < 2000) why += std::string(what) + "(" + std::to_string(size) + ") errno " + std::to_string(errno) + "; ";
  }
  // A malloc-family result: a block, or NULL with errno ENOMEM.
  bool result(void* p, const char* what, size_t size) {
    if (p != nullptr) {
      ++ok;
      return true;
    }
    if (errno == ENOMEM)
      ++enomem;
    else
      breach(what, size);
    return false;
  }
};

struct Block {
  void* p;
  size_t size;
};

// Writes the first and last byte (the block must be usable memory).
void touch(void* p, size_t size) {
  auto* c = static_cast<unsigned char*>(p);
  c[0] = 0xa5;
  c[size - 1] = 0x5a;
}

// Mixed requests: small, medium and large malloc, calloc (checked zero),
// aligned (memalign, posix_memalign, aligned_alloc; alignments up to 2 MiB),
// a realloc growing from 16 bytes to 16 MiB and shrinking back, am_new
// (throwing) and am_new_nothrow, a block of over 1 GiB (a reservation of
// its own), and a thread of its own. Every block is touched, then all are
// freed.
Tally workload() {
  Tally t;
  std::vector<Block> live;
  live.reserve(8192);
  auto keep = [&](void* p, size_t size, const char* what) {
    if (t.result(p, what, size)) {
      touch(p, size);
      live.push_back({p, size});
    }
  };
  for (size_t i = 0; i < 3000; ++i) {
    size_t size = 8 + (i * 37) % 4096;
    errno = 0;
    keep(am_malloc(size), size, "malloc");
  }
  for (size_t i = 0; i < 150; ++i) {
    size_t size = 4 * kKiB + (i * 7919 * 13) % (252 * kKiB);
    errno = 0;
    keep(am_malloc(size), size, "malloc");
  }
  for (size_t i = 0; i < 24; ++i) {
    size_t size = 300 * kKiB + (i * 331 * kKiB) % (8 * kMiB);
    errno = 0;
    keep(am_malloc(size), size, "malloc");
  }
  for (size_t size : {size_t{24}, size_t{4000}, 100 * kKiB, 600 * kKiB, 5 * kMiB}) {
    errno = 0;
    void* p = am_calloc(1, size);
    if (t.result(p, "calloc", size)) {
      auto* c = static_cast<unsigned char*>(p);
      if (c[0] != 0 || c[size / 2] != 0 || c[size - 1] != 0) t.breach("calloc not zeroed", size);
      touch(p, size);
      live.push_back({p, size});
    }
  }
  for (size_t align : {size_t{64}, size_t{4096}, 64 * kKiB, 2 * kMiB}) {
    for (size_t size : {size_t{100}, 300 * kKiB, 3 * kMiB}) {
      errno = 0;
      void* p = am_memalign(align, size);
      if (p && reinterpret_cast<uintptr_t>(p) % align) t.breach("memalign misaligned", size);
      keep(p, size, "memalign");
      void* q = nullptr;
      errno = 0;
      int rc = am_posix_memalign(&q, align, size);
      if (rc == 0) {
        ++t.ok;
        touch(q, size);
        live.push_back({q, size});
      } else if (rc == ENOMEM) {
        ++t.enomem;
      } else {
        t.breach("posix_memalign", size);
      }
      errno = 0;
      p = am_aligned_alloc(align, size);
      if (p && reinterpret_cast<uintptr_t>(p) % align) t.breach("aligned_alloc misaligned", size);
      keep(p, size, "aligned_alloc");
    }
  }
  // realloc: a failure leaves the old block as it was.
  errno = 0;
  auto* buf = static_cast<unsigned char*>(am_malloc(16));
  if (t.result(buf, "malloc", 16)) {
    size_t size = 16;
    memset(buf, 0x11, size);
    for (size_t want = 32; want <= 16 * kMiB; want *= 2) {
      errno = 0;
      auto* q = static_cast<unsigned char*>(am_realloc(buf, want));
      if (!t.result(q, "realloc", want)) {
        if (buf[0] != 0x11 || buf[size - 1] != 0x11) t.breach("realloc failure lost the block", want);
        continue;
      }
      if (q[0] != 0x11 || q[size - 1] != 0x11) t.breach("realloc lost the contents", want);
      buf = q;
      memset(buf + size, 0x11, want - size);
      size = want;
    }
    for (size_t want = size / 4; want >= 64; want /= 16) {
      errno = 0;
      auto* q = static_cast<unsigned char*>(am_realloc(buf, want));
      if (!t.result(q, "realloc", want)) continue;
      if (q[0] != 0x11 || q[want - 1] != 0x11) t.breach("realloc lost the contents", want);
      buf = q;
      size = want;
    }
    live.push_back({buf, size});
  }
  for (size_t size : {size_t{48}, 200 * kKiB, 2 * kMiB}) {
    try {
      void* p = am_new(size, 16);
      ++t.ok;
      touch(p, size);
      live.push_back({p, size});
    } catch (const std::bad_alloc&) {
      ++t.enomem;
    }
    errno = 0;
    keep(am_new_nothrow(size, 64), size, "new_nothrow");
  }
  {
    const size_t size = kGiB + 2 * kMiB;  // a reservation of its own (system_alloc.h)
    errno = 0;
    void* p = am_malloc(size);
    if (t.result(p, "malloc", size)) {
      touch(p, size);
      am_free(p);
    }
  }
  // Another thread: its own cache, the same contract.
  Tally other;
  std::thread th([&other] {
    std::vector<void*> mine;
    for (size_t i = 0; i < 500; ++i) {
      size_t size = 16 + (i * 53) % 2048;
      errno = 0;
      void* p = am_malloc(size);
      if (other.result(p, "thread malloc", size)) {
        touch(p, size);
        mine.push_back(p);
      }
    }
    for (void* p : mine) am_free(p);
  });
  th.join();
  t.ok += other.ok;
  t.enomem += other.enomem;
  t.bad += other.bad;
  t.why += other.why;
  for (Block& b : live) am_free(b.p);
  return t;
}

// No byte of the heap is lost: every region the system tier committed is the
// page heap's, and with every block freed nothing counts as in use.
void check_nothing_leaked() {
  size_t part_mapped = 0;
  for (int p = 0; p < am::page_heap_partitions(); ++p) part_mapped += am::page_heap_partition_stats(p).mapped;
  am::PageHeapStats ph = am::page_heap_stats();
  INFO("system mapped " << am::system_mapped_bytes() << ", page heap mapped " << part_mapped << ", free "
                        << ph.free_bytes << ", released " << ph.released_bytes << ", small spans "
                        << ph.small_span_bytes << ", large " << ph.large_bytes);
  CHECK(am::system_mapped_bytes() == part_mapped);
  CHECK(part_mapped == ph.free_bytes + ph.released_bytes + ph.small_span_bytes + ph.large_bytes);
  CHECK(ph.large_bytes == 0);
  CHECK(prop("generic.current_allocated_bytes") == 0);
}

// Nothing leaked; then, memory being back, the workload allocates everything
// again and still nothing leaks.
void check_recovered() {
  check_nothing_leaked();
  Tally again = workload();
  INFO(again.why);
  CHECK(again.bad == 0);
  CHECK(again.enomem == 0);
  check_nothing_leaked();
}

uint64_t env_u64(const char* name) {
  const char* v = getenv(name);
  REQUIRE(v != nullptr);
  return strtoull(v, nullptr, 10);
}

// Runs the child on every N until one run sees no failure injected. Returns
// how many runs had one.
int sweep(const char* child, const char* count) {
  int injected_runs = 0;
  for (int n = 1; n <= 400; ++n) {
    std::string at = std::to_string(n);
    SelfRun r = run_self(child, {}, {{"OOM_TEST_AT", at.c_str()}, {"OOM_TEST_COUNT", count},
                                     {"AMMALLOC_BACKGROUND_THREAD", "0"}});
    INFO("failing map call " << n << " (count " << count << "): exit status " << r.status << "\n" << r.out);
    REQUIRE(WIFEXITED(r.status));
    REQUIRE(WEXITSTATUS(r.status) == 0);
    size_t pos = r.out.find("injected=");
    REQUIRE(pos != std::string::npos);
    if (strtoull(r.out.c_str() + pos + 9, nullptr, 10) == 0) {
      size_t calls = r.out.find("calls=");
      WARN("out of memory, " << child << " count " << count << ": " << injected_runs
                             << " runs with a refusal; a run without one makes "
                             << (calls == std::string::npos ? 0 : strtoull(r.out.c_str() + calls + 6, nullptr, 10))
                             << " map calls");
      return injected_runs;
    }
    ++injected_runs;
  }
  FAIL("the workload never ran out of map calls to fail");
  return injected_runs;
}

}  // namespace

// The child: OOM_TEST_AT = N, OOM_TEST_COUNT = how many calls fail (0: all
// from the Nth on). Armed before the process's first allocation.
TEST_CASE("out of memory child: a workload with a refused map call", "[.][oom_child]") {
  const uint64_t at = env_u64("OOM_TEST_AT");
  const uint64_t count = env_u64("OOM_TEST_COUNT");
  am::os::inject_map_failures(at, count == 0 ? ~uint64_t{0} : count);
  Tally t = workload();
  const uint64_t calls = am::os::injected_map_calls(), injected = am::os::injected_map_failures();
  am::os::inject_map_failures(0, 0);
  std::printf("oom-child: calls=%llu injected=%llu ok=%zu enomem=%zu bad=%zu\n",
              static_cast<unsigned long long>(calls), static_cast<unsigned long long>(injected), t.ok, t.enomem,
              t.bad);
  INFO(t.why);
  CHECK(t.bad == 0);
  if (injected == 0) CHECK(t.enomem == 0);
  check_recovered();
}

TEST_CASE("out of memory: each map call in turn refused once; every request succeeds or fails with ENOMEM",
          "[oom]") {
  CHECK(sweep("[oom_child]", "1") > 0);
}

TEST_CASE("out of memory: every map call from the Nth on refused; every request succeeds or fails with ENOMEM, "
          "and all allocates again after",
          "[oom]") {
  CHECK(sweep("[oom_child]", "0") > 0);
}

// Metadata gone while heap pages are not: the heap warmed up (free spans of
// every size, released and backed), then the metadata arena runs dry (every
// map_aligned refused, its current chunk used up) and the page heap's pool of
// span records is emptied. Every operation that needs a record (a split, a
// new region) must fail with ENOMEM before it changes anything (carve checks
// that its record was reserved, and aborts otherwise); frees give records
// back, and what fits a free span whole is served. Then memory is back.
TEST_CASE("out of memory child: no metadata, pages to spare", "[.][oom_meta_child]") {
  Tally warm = workload();
  REQUIRE(warm.bad == 0);
  REQUIRE(warm.enomem == 0);
  am::os::inject_map_failures(1, ~uint64_t{0}, am::os::kMapAlignedCall);
  size_t dried = 0;
  while (am::meta_alloc(64) != nullptr && dried < (size_t{1} << 20)) ++dried;
  REQUIRE(am::meta_alloc(64) == nullptr);
  size_t records = 0;
  {
    am::LockGuard g(am::ph::g_ph.lock);
    while (am::ph::g_ph.spans.get() != nullptr) ++records;
  }
  Tally t;
  for (int round = 0; round < 3; ++round) {
    Tally r = workload();
    t.ok += r.ok;
    t.enomem += r.enomem;
    t.bad += r.bad;
    t.why += r.why;
  }
  const uint64_t injected = am::os::injected_map_failures();
  am::os::inject_map_failures(0, 0);
  std::printf("oom-meta-child: arena dried by %zu records, pool emptied of %zu; injected=%llu ok=%zu enomem=%zu "
              "bad=%zu\n",
              dried, records, static_cast<unsigned long long>(injected), t.ok, t.enomem, t.bad);
  INFO(t.why);
  CHECK(t.bad == 0);
  CHECK(t.ok > 0);
  CHECK(t.enomem > 0);
  check_recovered();
}

TEST_CASE("out of memory: no metadata but pages to spare: what needs a span record fails with ENOMEM, the rest is "
          "served, nothing aborts",
          "[oom]") {
  SelfRun r = run_self("[oom_meta_child]", {}, {{"AMMALLOC_BACKGROUND_THREAD", "0"}});
  INFO("exit status " << r.status << "\n" << r.out);
  REQUIRE(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  size_t pos = r.out.find("oom-meta-child:");
  if (pos != std::string::npos) WARN(r.out.substr(pos, r.out.find('\n', pos) - pos));
}

// The leak checker's table: its head array at start and an entry chunk per
// stripe on first use. Refused, the checker stays off (start) or leaves the
// block unrecorded; the allocation itself is served.
TEST_CASE("out of memory child: the leak checker's tables refused", "[.][oom_checker_child]") {
  // Refused at start: the checker stays off, the allocation works.
  am::os::inject_map_failures(1, ~uint64_t{0});
  am::heap_checker_start();
  CHECK_FALSE(am::heap_checker_on());
  am::os::inject_map_failures(0, 0);
  // The heap warmed (objects free in the caches), the checker on, one entry
  // recorded (its stack interned): then entry chunks are refused.
  std::vector<void*> warm;
  for (int i = 0; i < 2000; ++i) warm.push_back(am_malloc(32));
  for (void* p : warm) am_free(p);
  am::heap_checker_start();
  REQUIRE(am::heap_checker_on());
  std::vector<void*> blocks;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) am::os::inject_map_failures(1, ~uint64_t{0});
    for (int i = 0; i < (round == 0 ? 1 : 1000); ++i) {
      errno = 0;
      void* p = am_malloc(32);
      CHECK((p != nullptr || errno == ENOMEM));
      if (p) blocks.push_back(p);
    }
  }
  const uint64_t injected = am::os::injected_map_failures();
  am::os::inject_map_failures(0, 0);
  CHECK(injected > 0);
  CHECK(blocks.size() == 1001);
  for (void* p : blocks) am_free(p);
  size_t objects = 0;
  am_heap_leak_check(&objects, 0);
  CHECK(objects == 0);
  std::printf("oom-checker-child: injected=%llu\n", static_cast<unsigned long long>(injected));
}

TEST_CASE("out of memory: the leak checker's tables refused: no abort, the checker stays off or skips the block",
          "[oom]") {
  SelfRun r = run_self("[oom_checker_child]", {}, {{"AMMALLOC_BACKGROUND_THREAD", "0"}});
  INFO("exit status " << r.status << "\n" << r.out);
  REQUIRE(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
}

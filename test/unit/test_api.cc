// The am_* C API (lib/include/ammalloc/ammalloc.h) against glibc's contract:
// every alignment entry point for every power of two up to 1 GiB, the
// EINVAL/ENOMEM contracts, calloc overflow and zeroing, realloc across classes
// and into/out of large spans, usable sizes, sized free, operator new support,
// and the abort on pointers ammalloc never handed out (checked in forked
// children with stderr captured).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "core/span.h"

namespace {

constexpr size_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;

// Keep the background scavenger from releasing pages between a free and the
// check that follows it (options are read at the allocator's first call).
const int g_quiet_background = [] {
  setenv("AMMALLOC_SCAVENGER", "0", 0);
  return 0;
}();

bool aligned_to(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// Writes the block (all of it up to 1 MiB, else both ends) so that a block
// overlapping another or extending past its span shows up in later checks.
void touch(void* p, size_t n, unsigned char v) {
  if (n == 0) return;
  if (n <= MiB) {
    memset(p, v, n);
  } else {
    memset(p, v, 4096);
    memset(static_cast<char*>(p) + n - 4096, v, 4096);
  }
}

bool touched(const void* p, size_t n, unsigned char v) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  auto range_ok = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
      if (b[i] != v) return false;
    return true;
  };
  if (n <= MiB) return range_ok(0, n);
  return range_ok(0, 4096) && range_ok(n - 4096, n);
}

bool all_zero(const void* p, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

std::string hex(const void* p) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  return buf;
}


// Expects the child to abort with exactly "ammalloc: <function>(): invalid
// pointer <p>" (or, when allow_double_free, "double free of <p>").
template <typename F>
void expect_abort(const char* function, const void* p, F f, bool allow_double_free = false) {
  ChildResult r = run_in_child(f);
  std::string invalid = std::string("ammalloc: ") + function + "(): invalid pointer " + hex(p) + "\n";
  std::string twice = std::string("ammalloc: ") + function + "(): double free of " + hex(p) + "\n";
  INFO("child " << r.describe());
  CHECK(r.aborted());
  if (allow_double_free)
    CHECK((r.err == invalid || r.err == twice));
  else
    CHECK(r.err == invalid);
}

int g_global_object;

}  // namespace

// ---------------------------------------------------------------------------
// Alignment entry points
// ---------------------------------------------------------------------------

TEST_CASE("api: every alignment API honours every power of two up to 1 GiB", "[api][align]") {
  for (size_t a = 1; a <= GiB; a *= 2) {
    std::vector<size_t> sizes = {1, 24, 300 * KiB};
    if (a <= 16 * MiB) {
      sizes.push_back(a);
      sizes.push_back(a + 1);
      sizes.push_back(a / 2 + 1);
      sizes.push_back(3 * a + 7);
    }
    if (a <= 8 * KiB) {
      sizes.push_back(am::kMaxSmallSize);
      sizes.push_back(am::kMaxSmallSize - a + 1);
    }
    std::vector<std::pair<void*, size_t>> live;
    for (size_t size : sizes) {
      INFO("alignment " << a << " size " << size);
      void* p = am_memalign(a, size);
      REQUIRE(p != nullptr);
      CHECK(aligned_to(p, a));
      CHECK(aligned_to(p, 16));
      CHECK(am_malloc_usable_size(p) >= size);
      live.push_back({p, size});

      p = am_aligned_alloc(a, size);
      REQUIRE(p != nullptr);
      CHECK(aligned_to(p, a));
      CHECK(am_malloc_usable_size(p) >= size);
      live.push_back({p, size});

      if (a >= sizeof(void*)) {
        p = nullptr;
        REQUIRE(am_posix_memalign(&p, a, size) == 0);
        REQUIRE(p != nullptr);
        CHECK(aligned_to(p, a));
        CHECK(am_malloc_usable_size(p) >= size);
        live.push_back({p, size});
      }
    }
    // All blocks alive at once: fill them, then check none overwrote another.
    for (size_t i = 0; i < live.size(); ++i) touch(live[i].first, live[i].second, static_cast<unsigned char>(i + 1));
    for (size_t i = 0; i < live.size(); ++i) {
      INFO("alignment " << a << " block " << i << " size " << live[i].second);
      CHECK(touched(live[i].first, live[i].second, static_cast<unsigned char>(i + 1)));
      am_free(live[i].first);
    }
  }
}

TEST_CASE("api: valloc and pvalloc", "[api][align]") {
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}, size_t{4097}, size_t{5000}, 100 * KiB,
                      300 * KiB, 3 * MiB + 5}) {
    INFO("size " << size);
    void* p = am_valloc(size);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, 4096));
    CHECK(am_malloc_usable_size(p) >= size);
    touch(p, size, 0x42);
    am_free(p);

    p = am_pvalloc(size);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, 4096));
    const size_t rounded = size == 0 ? 4096 : (size + 4095) / 4096 * 4096;
    CHECK(am_malloc_usable_size(p) >= rounded);
    touch(p, rounded, 0x43);
    am_free(p);
  }
  errno = 0;
  CHECK(am_pvalloc(SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(am_valloc(SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
}

TEST_CASE("api: posix_memalign EINVAL/ENOMEM contract", "[api][align]") {
  void* const sentinel = reinterpret_cast<void*>(0x5a5a5a5a);
  for (size_t bad : {size_t{0}, size_t{1}, size_t{2}, size_t{4}, size_t{3}, size_t{12}, size_t{24}, size_t{48},
                     size_t{4097}, SIZE_MAX, (size_t{1} << 63) + 8}) {
    INFO("alignment " << bad);
    void* p = sentinel;
    CHECK(am_posix_memalign(&p, bad, 64) == EINVAL);
    CHECK(p == sentinel);
  }
  void* p = sentinel;
  CHECK(am_posix_memalign(&p, 64, SIZE_MAX) == ENOMEM);
  CHECK(p == sentinel);
  CHECK(am_posix_memalign(&p, 64, SIZE_MAX - 4096) == ENOMEM);
  CHECK(p == sentinel);
  CHECK(am_posix_memalign(&p, size_t{1} << 63, 1) == ENOMEM);
  CHECK(p == sentinel);
  // Size 0 succeeds with a freeable pointer.
  REQUIRE(am_posix_memalign(&p, 64, 0) == 0);
  CHECK(p != sentinel);
  am_free(p);
}

TEST_CASE("api: aligned_alloc and memalign contracts", "[api][align]") {
  for (size_t bad : {size_t{0}, size_t{3}, size_t{24}, size_t{100}, SIZE_MAX}) {
    INFO("alignment " << bad);
    errno = 0;
    CHECK(am_aligned_alloc(bad, 64) == nullptr);
    CHECK(errno == EINVAL);
  }
  errno = 0;
  CHECK(am_aligned_alloc(64, SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
  // memalign rounds an alignment that is not a power of two up, like glibc.
  for (size_t a : {size_t{3}, size_t{24}, size_t{100}, size_t{5000}}) {
    size_t pow2 = 1;
    while (pow2 < a) pow2 *= 2;
    void* p = am_memalign(a, 10);
    INFO("alignment " << a);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, pow2));
    am_free(p);
  }
  void* p = am_memalign(0, 10);  // 0 means no constraint
  REQUIRE(p != nullptr);
  am_free(p);
  errno = 0;
  CHECK(am_memalign(SIZE_MAX, 10) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(am_memalign(64, SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
}

// ---------------------------------------------------------------------------
// malloc / calloc / usable size
// ---------------------------------------------------------------------------

TEST_CASE("api: malloc failure and malloc(0)", "[api]") {
  for (size_t huge : {SIZE_MAX, SIZE_MAX - 8191, SIZE_MAX / 2, size_t{1} << 47, (size_t{1} << 46) + 1}) {
    INFO("size " << huge);
    errno = 0;
    CHECK(am_malloc(huge) == nullptr);
    CHECK(errno == ENOMEM);
  }
  std::set<void*> seen;
  std::vector<void*> zeros;
  for (int i = 0; i < 100; ++i) {
    void* p = am_malloc(0);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, 16));
    CHECK(seen.insert(p).second);
    zeros.push_back(p);
  }
  for (void* p : zeros) am_free(p);
  am_free(nullptr);  // no-op
}

TEST_CASE("api: default alignment and usable size", "[api]") {
  std::vector<void*> live;
  for (size_t n = 0; n <= 4096; n += (n < 512 ? 1 : 37)) {
    void* p = am_malloc(n);
    INFO("size " << n);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, 16));
    size_t u = am_malloc_usable_size(p);
    CHECK(u >= n);
    memset(p, 0x77, u);  // the whole usable size is ours
    live.push_back(p);
  }
  for (size_t n : {256 * KiB - 1, 256 * KiB, 256 * KiB + 1, MiB, 5 * MiB + 3}) {
    void* p = am_malloc(n);
    INFO("size " << n);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, 16));
    CHECK(am_malloc_usable_size(p) >= n);
    if (n > 256 * KiB) {
      CHECK(aligned_to(p, 8192));  // large objects are whole spans
      CHECK(am_malloc_usable_size(p) == (n + 8191) / 8192 * 8192);
    }
    live.push_back(p);
  }
  for (void* p : live) am_free(p);
  CHECK(am_malloc_usable_size(nullptr) == 0);
}

TEST_CASE("api: calloc overflow", "[api][calloc]") {
  const std::pair<size_t, size_t> cases[] = {
      {SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX / 2 + 1, 2}, {size_t{1} << 32, size_t{1} << 32}, {SIZE_MAX, SIZE_MAX}};
  for (auto [n, m] : cases) {
    INFO(n << " x " << m);
    errno = 0;
    CHECK(am_calloc(n, m) == nullptr);
    CHECK(errno == ENOMEM);
  }
  errno = 0;
  CHECK(am_calloc(1, SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
  void* p = am_calloc(0, 5);
  REQUIRE(p != nullptr);
  am_free(p);
  p = am_calloc(5, 0);
  REQUIRE(p != nullptr);
  am_free(p);
}

TEST_CASE("api: calloc returns zeroed memory after reuse (small)", "[api][calloc]") {
  for (uint32_t cl = 1; cl < am::kNumClasses; ++cl) {
    const size_t size = am::class_size(cl);
    INFO("class size " << size);
    // Dirty a few blocks of the class, free them, calloc them back.
    void* dirty[4];
    for (void*& d : dirty) {
      d = am_malloc(size);
      REQUIRE(d != nullptr);
      memset(d, 0xAB, size);
    }
    for (void* d : dirty) am_free(d);
    for (int i = 0; i < 4; ++i) {
      void* q = am_calloc(1, size);
      REQUIRE(q != nullptr);
      CHECK(all_zero(q, size));
      dirty[i] = q;
    }
    for (void* d : dirty) am_free(d);
    // n * m form.
    void* q = am_calloc(size / 16, 16);
    REQUIRE(q != nullptr);
    CHECK(all_zero(q, size));
    am_free(q);
  }
}

TEST_CASE("api: calloc returns zeroed memory after reuse (large)", "[api][calloc]") {
  SECTION("reused resident span") {
    for (size_t size : {256 * KiB + 1, MiB + 100, 3 * MiB}) {
      INFO("size " << size);
      void* p = am_malloc(size);
      REQUIRE(p != nullptr);
      memset(p, 0xCD, size);
      am_free(p);
      void* q = am_calloc(1, size);
      REQUIRE(q != nullptr);
      CHECK(all_zero(q, size));
      memset(q, 0xCE, size);
      am_free(q);
    }
  }
  SECTION("span released to the OS in between") {
    const size_t size = 4 * MiB;
    void* p = am_malloc(size);
    REQUIRE(p != nullptr);
    memset(p, 0xEE, size);
    am_free(p);
    am_release_free_memory();
    void* q = am_calloc(size / 8, 8);
    REQUIRE(q != nullptr);
    CHECK(all_zero(q, size));
    am_free(q);
  }
  SECTION("small spans given back to the page heap and reused as a large block") {
    // Dirty many small objects (whole spans), free them, release nothing,
    // then calloc a large block that may reuse those pages.
    std::vector<void*> v;
    for (int i = 0; i < 4096; ++i) {
      void* p = am_malloc(1000);
      memset(p, 0x99, 1000);
      v.push_back(p);
    }
    for (void* p : v) am_free(p);
    void* q = am_calloc(1, 2 * MiB);
    REQUIRE(q != nullptr);
    CHECK(all_zero(q, 2 * MiB));
    am_free(q);
  }
}

// ---------------------------------------------------------------------------
// realloc
// ---------------------------------------------------------------------------

TEST_CASE("api: realloc across classes and into/out of large spans keeps the content", "[api][realloc]") {
  const size_t steps[] = {1,      8,       16,          17,      100,          1000,      4096,     5000,
                          65536,  100000,  256 * KiB,   256 * KiB + 1,         300000,    MiB,      MiB + 1,
                          3 * MiB, MiB,    600000,      256 * KiB,             200000,    40000,    1000,
                          10,     1,       2 * MiB,     7,       256 * KiB + 8192, 48};
  auto pattern = [](size_t i, size_t step) { return static_cast<unsigned char>((i * 131 + step * 7) >> 3); };
  void* p = am_realloc(nullptr, steps[0]);
  REQUIRE(p != nullptr);
  size_t old = steps[0];
  for (size_t i = 0; i < old; ++i) static_cast<unsigned char*>(p)[i] = pattern(i, 0);
  for (size_t s = 1; s < sizeof steps / sizeof steps[0]; ++s) {
    const size_t n = steps[s];
    INFO("step " << s << ": " << old << " -> " << n);
    void* q = am_realloc(p, n);
    REQUIRE(q != nullptr);
    CHECK(am_malloc_usable_size(q) >= n);
    CHECK(aligned_to(q, 16));
    const unsigned char* b = static_cast<const unsigned char*>(q);
    const size_t keep = old < n ? old : n;
    size_t mismatches = 0;
    for (size_t i = 0; i < keep; ++i) mismatches += b[i] != pattern(i, s - 1);
    CHECK(mismatches == 0);
    for (size_t i = 0; i < n; ++i) static_cast<unsigned char*>(q)[i] = pattern(i, s);
    p = q;
    old = n;
  }
  am_free(p);
}

TEST_CASE("api: a large block grows and shrinks in place", "[api][realloc]") {
  SECTION("a buffer grown in 64 KiB steps moves a few times, not at every step") {
    // 300 KiB to 64 MiB: 1,020 steps. Always allocating, copying and freeing
    // moved it at every step; growing into the free pages after it, with room
    // taken when it does move, moves it about a dozen times.
    const size_t step = 64 * 1024;
    size_t len = 300 * 1024;
    auto* buf = static_cast<unsigned char*>(am_malloc(len));
    REQUIRE(buf != nullptr);
    memset(buf, 0x5A, len);
    int moves = 0, steps = 0;
    while (len < 64 * MiB) {
      auto* q = static_cast<unsigned char*>(am_realloc(buf, len + step));
      REQUIRE(q != nullptr);
      moves += q != buf;
      ++steps;
      REQUIRE(q[0] == 0x5A);
      REQUIRE(q[len - 1] == 0x5A);
      memset(q + len, 0x5A, step);
      buf = q;
      len += step;
    }
    CHECK(am_malloc_usable_size(buf) >= len);
    CHECK(touched(buf, len, 0x5A));
    INFO(moves << " moves in " << steps << " steps");
    CHECK(moves < 64);
    am_free(buf);
  }
  SECTION("shrinking a large block keeps it and gives the tail back") {
    auto* p = static_cast<unsigned char*>(am_malloc(8 * MiB));
    REQUIRE(p != nullptr);
    memset(p, 0x6B, 8 * MiB);
    auto* q = static_cast<unsigned char*>(am_realloc(p, 1 * MiB));
    CHECK(q == p);
    CHECK(am_malloc_usable_size(q) >= 1 * MiB);
    CHECK(am_malloc_usable_size(q) < 2 * MiB);
    CHECK(touched(q, 1 * MiB, 0x6B));
    // Large to small still moves (the block leaves the page heap's spans).
    void* r = am_realloc(q, 1000);
    REQUIRE(r != nullptr);
    CHECK(static_cast<unsigned char*>(r)[999] == 0x6B);
    am_free(r);
  }
}

TEST_CASE("api: realloc edge cases", "[api][realloc]") {
  SECTION("realloc(NULL, n) is malloc(n)") {
    void* p = am_realloc(nullptr, 100);
    REQUIRE(p != nullptr);
    CHECK(am_malloc_usable_size(p) >= 100);
    am_free(p);
    p = am_realloc(nullptr, MiB);
    REQUIRE(p != nullptr);
    CHECK(am_malloc_usable_size(p) >= MiB);
    am_free(p);
  }
  SECTION("realloc(p, 0) frees and returns NULL") {
    void* p = am_malloc(100);
    REQUIRE(p != nullptr);
    CHECK(am_realloc(p, 0) == nullptr);
    void* big = am_malloc(MiB);
    REQUIRE(big != nullptr);
    CHECK(am_realloc(big, 0) == nullptr);
  }
  SECTION("failure leaves the block alone") {
    for (size_t size : {size_t{100}, MiB}) {
      void* p = am_malloc(size);
      REQUIRE(p != nullptr);
      memset(p, 0x3E, size);
      errno = 0;
      CHECK(am_realloc(p, SIZE_MAX) == nullptr);
      CHECK(errno == ENOMEM);
      errno = 0;
      CHECK(am_realloc(p, SIZE_MAX - 4096) == nullptr);
      CHECK(errno == ENOMEM);
      CHECK(am_malloc_usable_size(p) >= size);
      CHECK(touched(p, size, 0x3E));
      am_free(p);
    }
  }
  SECTION("growing within the usable size keeps the pointer") {
    void* p = am_malloc(100);
    REQUIRE(p != nullptr);
    size_t u = am_malloc_usable_size(p);
    CHECK(am_realloc(p, u) == p);
    am_free(p);
  }
  SECTION("reallocarray") {
    void* p = am_reallocarray(nullptr, 10, 10);
    REQUIRE(p != nullptr);
    CHECK(am_malloc_usable_size(p) >= 100);
    memset(p, 0x21, 100);
    errno = 0;
    CHECK(am_reallocarray(p, SIZE_MAX / 2, 3) == nullptr);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(am_reallocarray(p, size_t{1} << 33, size_t{1} << 33) == nullptr);
    CHECK(errno == ENOMEM);
    CHECK(touched(p, 100, 0x21));
    void* q = am_reallocarray(p, 1000, 1000);
    REQUIRE(q != nullptr);
    CHECK(touched(q, 100, 0x21));
    CHECK(am_malloc_usable_size(q) >= 1000 * 1000);
    am_free(q);
  }
}

// ---------------------------------------------------------------------------
// Sized free, C++ support, trim
// ---------------------------------------------------------------------------

TEST_CASE("api: free_sized and free_aligned_sized accept the right sizes", "[api]") {
  for (size_t n : {size_t{1}, size_t{16}, size_t{17}, size_t{1000}, 256 * KiB, 256 * KiB + 1, 2 * MiB}) {
    INFO("size " << n);
    void* p = am_malloc(n);
    REQUIRE(p != nullptr);
    am_free_sized(p, n);
    p = am_malloc(n);
    am_free_sized(p, am_malloc_usable_size(p));
    p = am_memalign(256, n);
    REQUIRE(p != nullptr);
    am_free_aligned_sized(p, 256, n);
  }
  am_free_sized(nullptr, 0);
  am_free_sized(am_malloc(0), 0);
  // Every request size up to past the small classes, and after an in-place
  // realloc down to half the block, free_sized takes the size last asked for.
  for (size_t n = 1; n <= 300 * KiB; n += (n < 4096 ? 1 : n / 64)) {
    void* p = am_malloc(n);
    REQUIRE(p != nullptr);
    am_free_sized(p, n);
    p = am_malloc(n);
    size_t half = am_malloc_usable_size(p) / 2;
    if (half == 0) half = 1;
    void* q = am_realloc(p, half);
    REQUIRE(q != nullptr);
    am_free_sized(q, half);
  }
}

namespace {
int g_handler_calls = 0;
void counting_handler() {
  if (++g_handler_calls == 3) std::set_new_handler(nullptr);
}
void throwing_handler() {
  ++g_handler_calls;
  throw std::bad_alloc();
}
}  // namespace

TEST_CASE("api: am_new and am_new_nothrow", "[api][new]") {
  std::set_new_handler(nullptr);
  SECTION("success, with and without alignment") {
    void* p = am_new(100, 0);
    REQUIRE(p != nullptr);
    am_free(p);
    p = am_new(0, 0);
    REQUIRE(p != nullptr);
    am_free(p);
    for (size_t a : {size_t{32}, size_t{64}, size_t{4096}, size_t{65536}, 2 * MiB}) {
      p = am_new(100, a);
      REQUIRE(p != nullptr);
      CHECK(aligned_to(p, a));
      am_free(p);
    }
  }
  SECTION("failure throws std::bad_alloc without a handler") {
    CHECK_THROWS_AS(am_new(SIZE_MAX, 0), std::bad_alloc);
    CHECK_THROWS_AS(am_new(size_t{1} << 50, 64), std::bad_alloc);
    CHECK_THROWS_AS(am_new(SIZE_MAX / 2, 4096), std::bad_alloc);
  }
  SECTION("failure calls the new-handler until it gives up") {
    g_handler_calls = 0;
    std::set_new_handler(counting_handler);
    CHECK_THROWS_AS(am_new(SIZE_MAX, 0), std::bad_alloc);
    CHECK(g_handler_calls == 3);
    g_handler_calls = 0;
    std::set_new_handler(throwing_handler);
    CHECK_THROWS_AS(am_new(SIZE_MAX, 128), std::bad_alloc);
    CHECK(g_handler_calls == 1);
  }
  SECTION("nothrow returns nullptr") {
    CHECK(am_new_nothrow(SIZE_MAX, 0) == nullptr);
    CHECK(am_new_nothrow(SIZE_MAX, 64) == nullptr);
    g_handler_calls = 0;
    std::set_new_handler(throwing_handler);
    CHECK(am_new_nothrow(SIZE_MAX, 0) == nullptr);
    CHECK(g_handler_calls == 1);
    g_handler_calls = 0;
    std::set_new_handler(counting_handler);
    CHECK(am_new_nothrow(SIZE_MAX, 0) == nullptr);
    CHECK(g_handler_calls == 3);
    void* p = am_new_nothrow(64, 0);
    REQUIRE(p != nullptr);
    am_free(p);
  }
  std::set_new_handler(nullptr);
}

TEST_CASE("api: malloc_trim, mallopt, release", "[api]") {
  void* p = am_malloc(8 * MiB);
  REQUIRE(p != nullptr);
  memset(p, 1, 8 * MiB);
  am_free(p);
  CHECK(am_malloc_trim(0) == 1);  // at least the 8 MiB just freed
  CHECK(am_release_free_memory() == 0);
  CHECK(am_mallopt(1, 1) == 1);
}

// ---------------------------------------------------------------------------
// Pointers ammalloc never handed out abort
// ---------------------------------------------------------------------------

TEST_CASE("api: free of an interior pointer aborts", "[api][invalid]") {
  char* small = static_cast<char*>(am_malloc(64));
  char* large = static_cast<char*>(am_malloc(MiB));
  REQUIRE(small != nullptr);
  REQUIRE(large != nullptr);
  expect_abort("free", small + 16, [&] { am_free(small + 16); });
  expect_abort("free", small + 1, [&] { am_free(small + 1); });
  expect_abort("free", large + 16, [&] { am_free(large + 16); });
  expect_abort("free", large + 8192, [&] { am_free(large + 8192); });
  expect_abort("free", large + MiB - 8192, [&] { am_free(large + MiB - 8192); });
  expect_abort("realloc", small + 32, [&] { am_realloc(small + 32, 10); });
  expect_abort("realloc", large + 8192, [&] { am_realloc(large + 8192, 10); });
  expect_abort("malloc_usable_size", large + 4096, [&] { am_malloc_usable_size(large + 4096); });
  am_free(small);
  am_free(large);
}

TEST_CASE("api: free of a foreign pointer aborts", "[api][invalid]") {
  void* const from_libc = malloc(64);
  REQUIRE(from_libc != nullptr);
  int on_stack = 0;
  expect_abort("free", from_libc, [&] { am_free(from_libc); });
  expect_abort("free", &on_stack, [&] { am_free(&on_stack); });
  expect_abort("free", &g_global_object, [&] { am_free(&g_global_object); });
  expect_abort("free", reinterpret_cast<void*>(16), [] { am_free(reinterpret_cast<void*>(16)); });
  // ammalloc's own metadata (a span record) is not a block either.
  void* obj = am_malloc(100);
  void* meta = am::pagemap_span(reinterpret_cast<uintptr_t>(obj));
  REQUIRE(meta != nullptr);
  expect_abort("free", meta, [&] { am_free(meta); });
  am_free(obj);
  expect_abort("realloc", from_libc, [&] { am_realloc(from_libc, 100); });
  expect_abort("malloc_usable_size", &on_stack, [&] { am_malloc_usable_size(&on_stack); });
  free(from_libc);
}

TEST_CASE("api: double free of a large block aborts", "[api][invalid]") {
  void* p = am_malloc(MiB);
  REQUIRE(p != nullptr);
  expect_abort(
      "free", p,
      [&] {
        am_free(p);
        am_free(p);
      },
      /*allow_double_free=*/true);
  // With its neighbours freed too (the freed span coalesces).
  void* a = am_malloc(MiB);
  void* b = am_malloc(MiB);
  void* c = am_malloc(MiB);
  expect_abort(
      "free", b,
      [&] {
        am_free(b);
        am_free(a);
        am_free(c);
        am_free(b);
      },
      true);
  am_free(a);
  am_free(b);
  am_free(c);
  am_free(p);
}

TEST_CASE("api: free_sized with a size from another class aborts", "[api][invalid]") {
  void* p = am_malloc(64);
  REQUIRE(p != nullptr);
  expect_abort("free_sized", p, [&] { am_free_sized(p, 1000); });
  expect_abort("free_sized", p, [&] { am_free_sized(p, 10 * MiB); });
  // Smaller than any request that could have produced this block.
  void* k = am_malloc(1000);
  REQUIRE(k != nullptr);
  expect_abort("free_sized", k, [&] { am_free_sized(k, 16); });
  void* big = am_malloc(MiB);
  REQUIRE(big != nullptr);
  expect_abort("free_sized", big, [&] { am_free_sized(big, 64); });
  am_free(big);
  am_free(k);
  am_free(p);
}

TEST_CASE("api: a class-aligned address in a span's unused tail is not an object", "[api][invalid]") {
  // Size class 48: 8192 / 48 = 170 objects, and a 32-byte tail at offset 8160,
  // which is a multiple of 48 but not an object (it ends 16 bytes past the span).
  const size_t size = 48;
  const uint32_t cl = am::size_to_class(size);
  REQUIRE(am::class_size(cl) == size);
  void* obj = am_malloc(size);
  REQUIRE(obj != nullptr);
  am::Span* s = am::pagemap_span(reinterpret_cast<uintptr_t>(obj));
  REQUIRE(s != nullptr);
  const am::SizeClassInfo& info = am::class_info(cl);
  const uintptr_t tail = s->start() + static_cast<uintptr_t>(info.objects) * info.size;
  REQUIRE(tail < s->start() + s->bytes());  // this class has a tail
  void* bogus = reinterpret_cast<void*>(tail);
  expect_abort("free", bogus, [&] { am_free(bogus); });
  expect_abort("malloc_usable_size", bogus, [&] { am_malloc_usable_size(bogus); });
  am_free(obj);
}

TEST_CASE("api: an address above 2^48 that aliases a live object is not ours", "[api][invalid]") {
  void* obj = am_malloc(64);
  REQUIRE(obj != nullptr);
  void* alias = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(obj) | (uintptr_t{1} << 48));
  expect_abort("free", alias, [&] { am_free(alias); });
  expect_abort("malloc_usable_size", alias, [&] { am_malloc_usable_size(alias); });
  void* big = am_malloc(MiB);
  void* big_alias = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(big) | (uintptr_t{1} << 48));
  expect_abort("free", big_alias, [&] { am_free(big_alias); });
  am_free(big);
  am_free(obj);
}

// Hardening (lib/front/harden.h): off, the fast path's route tables are the size-class
// tables and links are plain; on (AMMALLOC_HARDEN=1, read once at start-up, so
// those cases run in a fresh process of this binary): links are encoded, every
// small operation takes the checked path, double frees, frees after a flush,
// realloc of a freed block and a forged link abort with a message naming the
// function and the pointer, and ordinary use (every class, aligned, realloc,
// cross-thread frees) works with exact stats.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "front/alloc_fast.h"
#include "ammalloc/ammalloc.h"
#include "child_process.h"
#include "front/harden.h"
#include "core/options.h"
#include "core/size_class.h"

using namespace am;

namespace {

SelfRun run_hardened(const char* name) { return run_self(name, {}, {{"AMMALLOC_HARDEN", "1"}}); }

bool died_of_abort(const SelfRun& r) { return WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT; }

void fill(void* p, size_t n, unsigned char seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed + i);
}

bool intact(const void* p, size_t n, unsigned char seed) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != static_cast<unsigned char>(seed + i)) return false;
  return true;
}

}  // namespace

TEST_CASE("harden: off unless asked, the fast path's routes are the size-class tables", "[harden]") {
  const char* env = getenv("AMMALLOC_HARDEN");
  if (env != nullptr || kOptionTable[kOptHarden].def != 0) {
    WARN("hardening is on in this process (AMMALLOC_HARDEN or -Dharden=true): nothing to check");
    return;
  }
  void* p = am_malloc(64);  // initialises
  am_free(p);
  CHECK_FALSE(harden_on());
  CHECK(g_harden.link == 0);
  bool routes_equal = true;
  for (size_t i = 0; i < kClassIndexSize; ++i)
    routes_equal &= g_fast_route.list_offset[i] == kSizeClasses.index[i] * sizeof(FreeList);
  CHECK(routes_equal);
  for (size_t size : {0, 1, 16, 17, 1000, 256 * 1024}) CHECK(route_class(size) == size_to_class(size));
  bool gates_equal = std::memcmp(g_fast_route.gate.data(), kSizeClasses.free_gate.data(),
                                 sizeof(FreeGate) * kNumClasses) == 0;
  CHECK(gates_equal);
}

// ---- hidden cases, run hardened in a fresh process -------------------------

TEST_CASE("harden child: ordinary use", "[.harden-child-use]") {
  am_free(am_malloc(1));  // init reads AMMALLOC_HARDEN
  REQUIRE(harden_on());
  REQUIRE(g_harden.link != 0);
  // Links are stored encoded: b's first word is not the address of a.
  void* a = am_malloc(48);
  void* b = am_malloc(48);
  am_free(a);
  am_free(b);
  uintptr_t raw = *static_cast<uintptr_t*>(b);
  CHECK(raw != reinterpret_cast<uintptr_t>(a));
  CHECK(link_next(b) == a);
  CHECK(am_malloc(48) == b);
  CHECK(am_malloc(48) == a);
  am_free(a);
  am_free(b);

  // Every class, twice round the caches, contents checked.
  std::vector<std::pair<void*, size_t>> live;
  for (int round = 0; round < 2; ++round) {
    for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
      size_t n = class_size(cl);
      for (int k = 0; k < 3; ++k) {
        void* p = am_malloc(n);
        REQUIRE(p != nullptr);
        fill(p, n, static_cast<unsigned char>(cl + k));
        live.push_back({p, n});
      }
    }
    for (size_t i = 0; i < live.size(); ++i) {
      auto [p, n] = live[i];
      uint32_t cl = size_to_class(n);
      REQUIRE(intact(p, n, static_cast<unsigned char>(cl + i % 3)));
      am_free(p);
    }
    live.clear();
  }
  // Aligned, calloc, realloc across classes.
  for (size_t align : {32, 64, 256, 4096}) {
    void* p = am_aligned_alloc(align, 100);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
    am_free(p);
  }
  auto* z = static_cast<unsigned char*>(am_calloc(10, 100));
  REQUIRE(z != nullptr);
  bool zero = true;
  for (int i = 0; i < 1000; ++i) zero &= z[i] == 0;
  CHECK(zero);
  void* r = am_realloc(z, 5000);
  REQUIRE(r != nullptr);
  r = am_realloc(r, 40);
  am_free(r);

  // Objects allocated by one thread and freed by others (through the transfer
  // and central caches and back).
  std::vector<void*> objs(20000);
  for (size_t i = 0; i < objs.size(); ++i) objs[i] = am_malloc(16 + i % 700);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < objs.size(); i += 4) am_free(objs[i]);
      am_thread_cache_flush();
    });
  for (auto& t : ts) t.join();
  for (size_t i = 0; i < objs.size(); ++i) objs[i] = am_malloc(16 + i % 700);
  for (void* p : objs) am_free(p);
  std::printf("HARDEN-USE-OK\n");
}

TEST_CASE("harden child: double free", "[.harden-child-double-free]") {
  void* p = am_malloc(64);
  std::printf("TARGET %p\n", p);
  std::fflush(stdout);
  am_free(p);
  am_free(p);
  std::printf("NOT-CAUGHT\n");
}

TEST_CASE("harden child: double free after the object left the thread cache", "[.harden-child-double-free-flushed]") {
  void* p = am_malloc(200);
  std::printf("TARGET %p\n", p);
  std::fflush(stdout);
  am_free(p);
  am_thread_cache_flush();  // p is now on a span's free list in the central cache
  am_free(p);
  std::printf("NOT-CAUGHT\n");
}

TEST_CASE("harden child: realloc of a freed block", "[.harden-child-realloc-freed]") {
  void* p = am_malloc(64);
  std::printf("TARGET %p\n", p);
  std::fflush(stdout);
  am_free(p);
  void* q = am_realloc(p, 500);
  std::printf("NOT-CAUGHT %p\n", q);
}

TEST_CASE("harden child: a use-after-free write cannot forge an allocation", "[.harden-child-forged-link]") {
  static char target[256];
  void* a = am_malloc(64);
  void* p = am_malloc(64);
  am_free(a);
  am_free(p);  // p is the list's head, its link leads to a
  std::printf("TARGET %p\n", p);
  std::fflush(stdout);
  *static_cast<void**>(p) = target;  // the attacker's write, after free
  void* x = am_malloc(64);           // pops p: its link is checked
  void* y = am_malloc(64);
  std::printf("NOT-CAUGHT %p %p (target %p)\n", x, y, static_cast<void*>(target));
}

// ---- the cases themselves ---------------------------------------------------

TEST_CASE("harden: ordinary use works hardened", "[harden]") {
  SelfRun r = run_hardened("harden child: ordinary use");
  INFO(r.out);
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  CHECK(r.out.find("HARDEN-USE-OK") != std::string::npos);
}

namespace {
// The child announced its target; the abort line must name function and target.
void check_caught(const char* name, const std::string& expected_prefix) {
  SelfRun r = run_hardened(name);
  INFO(name << ":\n" << r.out);
  CHECK(died_of_abort(r));
  CHECK(r.out.find("NOT-CAUGHT") == std::string::npos);
  size_t t = r.out.find("TARGET ");
  REQUIRE(t != std::string::npos);
  std::string target = r.out.substr(t + 7, r.out.find('\n', t) - t - 7);
  CHECK(r.out.find(expected_prefix + target + "\n") != std::string::npos);
}
}  // namespace

TEST_CASE("harden: a double free of a small object aborts", "[harden]") {
  check_caught("harden child: double free", "ammalloc: free(): double free of ");
  check_caught("harden child: double free after the object left the thread cache",
               "ammalloc: free(): double free of ");
}

TEST_CASE("harden: realloc of a freed small object aborts", "[harden]") {
  check_caught("harden child: realloc of a freed block", "ammalloc: realloc(): double free of ");
}

TEST_CASE("harden: a forged free-list link aborts at the pop", "[harden]") {
  check_caught("harden child: a use-after-free write cannot forge an allocation",
               "ammalloc: malloc(): corrupted free list at ");
}

// ---- guard pages (AMMALLOC_GUARD_PAGES, run-time settable) --------------------

TEST_CASE("guard pages: a write just past a large allocation's pages faults", "[harden][guard]") {
  ChildResult r = run_in_child([] {
    REQUIRE(am_option_set("AMMALLOC_GUARD_PAGES", 1) == 0);
    auto* p = static_cast<volatile char*>(am_malloc(320 * 1024));
    size_t usable = am_malloc_usable_size(const_cast<char*>(p));
    if (usable != 320 * 1024) _exit(3);  // 320 KiB: a whole number of pages
    p[usable - 1] = 1;                   // the object's own last byte: fine
    p[usable] = 1;                       // the guard page
    _exit(4);
  });
  INFO(r.describe());
  CHECK(WIFSIGNALED(r.status));
  CHECK(WTERMSIG(r.status) == SIGSEGV);
}

TEST_CASE("guard pages: freed spans are whole again, usable sizes exclude the guard", "[harden][guard]") {
  ChildResult r = run_in_child([] {
    REQUIRE(am_option_set("AMMALLOC_GUARD_PAGES", 1) == 0);
    std::vector<char*> blocks;
    for (int i = 0; i < 20; ++i) {
      size_t n = (300 + 64 * static_cast<size_t>(i)) * 1024;
      char* p = static_cast<char*>(am_malloc(n));
      if (p == nullptr || am_malloc_usable_size(p) < n) _exit(3);
      std::memset(p, i, am_malloc_usable_size(p));
      blocks.push_back(p);
    }
    for (char* p : blocks) am_free(p);
    // Without guards now: the same pages come back and every byte is writable,
    // including those that were guards.
    REQUIRE(am_option_set("AMMALLOC_GUARD_PAGES", 0) == 0);
    for (int i = 0; i < 20; ++i) {
      size_t n = (300 + 64 * static_cast<size_t>(i)) * 1024 + 8192;
      char* p = static_cast<char*>(am_malloc(n));
      if (p == nullptr) _exit(5);
      std::memset(p, 0x5a, am_malloc_usable_size(p));
      am_free(p);
    }
  });
  INFO(r.describe());
  CHECK(r.exited_ok());
}

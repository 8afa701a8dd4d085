// Malloc hooks (lib/observe/hooks.h, am_hook_add/am_hook_remove): exact call counts
// per API across every am_* entry point, with threads; several hooks at once;
// hooks that allocate; realloc's documented sequence; removal.
//
// The core is linked into this test, so am_* calls are ammalloc and the test's
// own malloc/new (Catch2, std::vector) is glibc's: only am_* calls count.
// operator new/delete are covered by test/profile/hooks_linked.
#include <catch2/catch.hpp>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "observe/hooks.h"
#include "heap/thread_cache.h"
#include "child_process.h"

namespace {

struct Counts {
  std::atomic<long> pre_alloc[AM_API_COUNT] = {};
  std::atomic<long> post_alloc[AM_API_COUNT] = {};
  std::atomic<long> pre_free[AM_API_COUNT] = {};
  std::atomic<long> post_free[AM_API_COUNT] = {};
  std::atomic<long> null_results{0};
  std::atomic<long> bytes_asked{0};

  long total() const {
    long t = 0;
    for (int i = 0; i < AM_API_COUNT; ++i) t += pre_alloc[i] + post_alloc[i] + pre_free[i] + post_free[i];
    return t;
  }
};

void on_pre_alloc(void* ctx, size_t size, am_api api) {
  auto* c = static_cast<Counts*>(ctx);
  c->pre_alloc[api]++;
  c->bytes_asked += static_cast<long>(size);
}
void on_post_alloc(void* ctx, void* p, size_t, am_api api) {
  auto* c = static_cast<Counts*>(ctx);
  c->post_alloc[api]++;
  if (p == nullptr) c->null_results++;
}
void on_pre_free(void* ctx, void*, size_t, am_api api) { static_cast<Counts*>(ctx)->pre_free[api]++; }
void on_post_free(void* ctx, void*, size_t, am_api api) { static_cast<Counts*>(ctx)->post_free[api]++; }

am_hooks counting(Counts* c) { return am_hooks{on_pre_alloc, on_post_alloc, on_pre_free, on_post_free, c}; }

// Failures inside worker threads (Catch2's assertions are not thread-safe).
std::atomic<long> g_thread_failures{0};
#define EXPECT_IN_THREAD(cond) \
  do {                         \
    if (!(cond)) g_thread_failures++; \
  } while (0)

// One of each allocating API and the matching frees: 10 allocations, 10 frees.
void one_of_each() {
  void* p = am_malloc(100);
  am_free(p);
  p = am_calloc(10, 10);
  am_free(p);
  p = am_realloc(nullptr, 50);  // realloc(NULL): an alloc only
  p = am_realloc(p, 5000);      // moves: alloc + free
  p = am_realloc(p, 0);         // frees, returns NULL: a free only
  EXPECT_IN_THREAD(p == nullptr);
  p = am_memalign(64, 100);
  am_free(p);
  void* q = nullptr;
  EXPECT_IN_THREAD(am_posix_memalign(&q, 128, 300) == 0);
  am_free_sized(q, 300);
  p = am_aligned_alloc(256, 512);
  am_free(p);
  p = am_valloc(1000);
  am_free(p);
  p = am_pvalloc(1000);
  am_free(p);
  p = am_new(400000, 0);  // large: page-heap path
  am_free(p);
}

void check_one_of_each(const Counts& c, long times) {
  const struct {
    am_api api;
    long allocs, frees;
  } want[] = {
      {AM_API_MALLOC, 1, 0},         {AM_API_CALLOC, 1, 0},  {AM_API_REALLOC, 2, 2},
      {AM_API_MEMALIGN, 1, 0},       {AM_API_POSIX_MEMALIGN, 1, 0},
      {AM_API_ALIGNED_ALLOC, 1, 0},  {AM_API_VALLOC, 1, 0},  {AM_API_PVALLOC, 1, 0},
      {AM_API_NEW, 1, 0},            {AM_API_FREE, 0, 7},    {AM_API_FREE_SIZED, 0, 1},
  };
  long sum = 0;
  for (const auto& w : want) {
    INFO("api " << am_api_name(w.api));
    CHECK(c.pre_alloc[w.api] == w.allocs * times);
    CHECK(c.post_alloc[w.api] == w.allocs * times);
    CHECK(c.pre_free[w.api] == w.frees * times);
    CHECK(c.post_free[w.api] == w.frees * times);
    sum += 2 * (w.allocs + w.frees) * times;
  }
  CHECK(c.total() == sum);
  CHECK(c.null_results == 0);
}

}  // namespace

TEST_CASE("hooks see every API exactly once per call", "[hooks]") {
  Counts c;
  am_hooks h = counting(&c);
  int id = am_hook_add(&h);
  REQUIRE(id > 0);
  CHECK(am::observed());
  CHECK(am::thread_cache_bypassed());
  one_of_each();
  REQUIRE(am_hook_remove(id) == 0);
  check_one_of_each(c, 1);
  // Removed: nothing more is counted, and the fast path is back.
  long before = c.total();
  am_free(am_malloc(10));
  CHECK(c.total() == before);
  CHECK_FALSE(am::observed());
  CHECK_FALSE(am::thread_cache_bypassed());
  CHECK(am_hook_remove(id) == -1);
}

TEST_CASE("hooks count exactly across threads", "[hooks][threads]") {
  Counts c;
  am_hooks h = counting(&c);
  int id = am_hook_add(&h);
  REQUIRE(id > 0);
  constexpr int kThreads = 4, kRounds = 300;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([] {
      for (int i = 0; i < kRounds; ++i) one_of_each();
    });
  for (auto& t : ts) t.join();
  REQUIRE(am_hook_remove(id) == 0);
  CHECK(g_thread_failures == 0);
  check_one_of_each(c, kThreads * kRounds);
}

TEST_CASE("blocks freed on another thread are counted once", "[hooks][threads]") {
  Counts c;
  am_hooks h = counting(&c);
  int id = am_hook_add(&h);
  constexpr int kN = 5000;
  std::vector<void*> blocks(kN);
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) blocks[i] = am_malloc(16 + i % 2000);
  });
  producer.join();
  std::thread consumer([&] {
    for (void* p : blocks) am_free(p);
  });
  consumer.join();
  am_hook_remove(id);
  CHECK(c.pre_alloc[AM_API_MALLOC] == kN);
  CHECK(c.post_free[AM_API_FREE] == kN);
  CHECK(c.total() == 4 * kN);
}

namespace {
struct Event {
  char kind;  // 'a' = post_alloc, 'f' = pre_free
  void* p;
  size_t size;
  am_api api;
};
struct Recorder {
  Event ev[16];
  std::atomic<int> n{0};
};
void rec_alloc(void* ctx, void* p, size_t size, am_api api) {
  auto* r = static_cast<Recorder*>(ctx);
  int i = r->n++;
  if (i < 16) r->ev[i] = {'a', p, size, api};
}
void rec_free(void* ctx, void* p, size_t size, am_api api) {
  auto* r = static_cast<Recorder*>(ctx);
  int i = r->n++;
  if (i < 16) r->ev[i] = {'f', p, size, api};
}
}  // namespace

TEST_CASE("realloc reports a free of the old block and an alloc of the new", "[hooks][realloc]") {
  void* p = am_malloc(1000);  // class 1024
  Recorder r;
  am_hooks h{nullptr, rec_alloc, rec_free, nullptr, &r};
  int id = am_hook_add(&h);

  SECTION("in place: free first, then the alloc of the same address") {
    void* q = am_realloc(p, 900);
    REQUIRE(q == p);
    REQUIRE(r.n == 2);
    CHECK(r.ev[0].kind == 'f');
    CHECK(r.ev[0].p == p);
    CHECK(r.ev[0].size == am_malloc_usable_size(p));
    CHECK(r.ev[0].api == AM_API_REALLOC);
    CHECK(r.ev[1].kind == 'a');
    CHECK(r.ev[1].p == p);
    CHECK(r.ev[1].size == 900);
    CHECK(r.ev[1].api == AM_API_REALLOC);
    p = q;
  }
  SECTION("moving: the new block first, then the free of the old") {
    void* q = am_realloc(p, 100000);
    REQUIRE(q != p);
    REQUIRE(r.n == 2);
    CHECK(r.ev[0].kind == 'a');
    CHECK(r.ev[0].p == q);
    CHECK(r.ev[0].size == 100000);
    CHECK(r.ev[1].kind == 'f');
    CHECK(r.ev[1].p == p);
    CHECK(r.ev[0].api == AM_API_REALLOC);
    CHECK(r.ev[1].api == AM_API_REALLOC);
    p = q;
  }
  SECTION("failure: an alloc that returned NULL, no free") {
    void* q = am_realloc(p, size_t{1} << 62);
    REQUIRE(q == nullptr);
    REQUIRE(r.n == 1);
    CHECK(r.ev[0].kind == 'a');
    CHECK(r.ev[0].p == nullptr);
  }
  am_hook_remove(id);
  am_free(p);
}

namespace {
std::atomic<long> g_inner_calls{0};
void allocating_hook(void* ctx, void* p, size_t, am_api) {
  // A hook that allocates and frees: its own calls must not reach hooks.
  void* scratch = am_malloc(64);
  void* more = am_calloc(4, 100);
  am_free(scratch);
  am_free(more);
  (void)p;
  static_cast<Counts*>(ctx)->post_alloc[AM_API_MALLOC]++;
  g_inner_calls++;
}
}  // namespace

TEST_CASE("a hook may allocate without calling hooks again", "[hooks]") {
  Counts outer, other;
  am_hooks h1{nullptr, allocating_hook, nullptr, nullptr, &outer};
  am_hooks h2 = counting(&other);
  int a = am_hook_add(&h1);
  int b = am_hook_add(&h2);
  REQUIRE(a > 0);
  REQUIRE(b > 0);
  REQUIRE(a != b);
  for (int i = 0; i < 100; ++i) am_free(am_malloc(32));
  am_hook_remove(a);
  am_hook_remove(b);
  CHECK(outer.post_alloc[AM_API_MALLOC] == 100);
  CHECK(g_inner_calls == 100);
  // The second hook saw the program's 100 + 100 calls, none of the first hook's.
  CHECK(other.pre_alloc[AM_API_MALLOC] == 100);
  CHECK(other.post_free[AM_API_FREE] == 100);
  CHECK(other.total() == 400);
}

TEST_CASE("the hook table has AM_HOOK_MAX slots", "[hooks]") {
  Counts c;
  am_hooks h = counting(&c);
  std::vector<int> ids;
  for (int i = 0; i < AM_HOOK_MAX; ++i) {
    int id = am_hook_add(&h);
    REQUIRE(id > 0);
    ids.push_back(id);
  }
  CHECK(am_hook_add(&h) == -1);
  CHECK(am_hook_add(nullptr) == -1);
  am_free(am_malloc(8));
  CHECK(c.pre_alloc[AM_API_MALLOC] == AM_HOOK_MAX);
  for (int id : ids) CHECK(am_hook_remove(id) == 0);
  CHECK(am_hook_remove(0) == -1);
  CHECK(am_hook_remove(AM_HOOK_MAX + 1) == -1);
  CHECK_FALSE(am::observed());
}

TEST_CASE("removal waits for callbacks in flight", "[hooks][threads]") {
  Counts c;
  am_hooks h = counting(&c);
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&] {
      while (!stop) am_free(am_malloc(48));
    });
  for (int round = 0; round < 200; ++round) {
    int id = am_hook_add(&h);
    REQUIRE(id > 0);
    REQUIRE(am_hook_remove(id) == 0);
  }
  stop = true;
  for (auto& t : ts) t.join();
  // Every alloc callback that started was matched by the counters (no torn
  // table entries); pre and post of one call may straddle an add or remove.
  CHECK(c.pre_alloc[AM_API_MALLOC] >= 0);
  CHECK_FALSE(am::observed());
}

TEST_CASE("am_api_name names every API", "[hooks]") {
  CHECK(std::strcmp(am_api_name(AM_API_MALLOC), "malloc") == 0);
  CHECK(std::strcmp(am_api_name(AM_API_NEW_ARRAY), "operator new[]") == 0);
  CHECK(std::strcmp(am_api_name(AM_API_DELETE_ARRAY), "operator delete[]") == 0);
  CHECK(std::strcmp(am_api_name(AM_API_COUNT), "?") == 0);
}

// Internal observers (hooks_add_internal: how the heap checker registers):
// they run nearest the real work (inside the program's hooks), see what a
// program hook allocates, and stay for good: so in a forked child.
namespace {

struct Trace {
  char ev[64];
  int n = 0;
  void add(char c) {
    if (n < 63) ev[n++] = c;
  }
};
Trace g_trace;
void* g_inner_block;

void prog_pre_alloc(void*, size_t, am_api) { g_trace.add('A'); }
void prog_post_alloc(void*, void*, size_t, am_api) {
  g_trace.add('B');
  // A program hook that allocates: its own hooks stay quiet, the internal
  // observer still sees it.
  if (g_inner_block == nullptr) g_inner_block = am_malloc(24);
}
void prog_pre_free(void*, void*, size_t, am_api) { g_trace.add('C'); }
void prog_post_free(void*, void*, size_t, am_api) { g_trace.add('D'); }
void int_pre_alloc(void*, size_t, am_api) { g_trace.add('a'); }
void int_post_alloc(void*, void*, size_t, am_api) { g_trace.add('b'); }
void int_pre_free(void*, void*, size_t, am_api) { g_trace.add('c'); }
void int_post_free(void*, void*, size_t, am_api) { g_trace.add('d'); }

}  // namespace

TEST_CASE("internal observers run inside the program's hooks and see hook allocations", "[hooks]") {
#if defined(__SANITIZE_THREAD__)
  // The child may start the background thread again, which ThreadSanitizer
  // refuses after a multi-threaded fork; the release and ASan builds run it.
  WARN("not run under ThreadSanitizer (no new threads after a multi-threaded fork)");
  return;
#endif
  ChildResult r = run_in_child([] {
    am_hooks internal{int_pre_alloc, int_post_alloc, int_pre_free, int_post_free, nullptr};
    if (!am::hooks_add_internal(internal)) _exit(10);
    if (!am::observed()) _exit(11);
    am_hooks prog{prog_pre_alloc, prog_post_alloc, prog_pre_free, prog_post_free, nullptr};
    int h = am_hook_add(&prog);
    if (h <= 0) _exit(12);
    g_trace.n = 0;
    void* p = am_malloc(100);
    am_free(p);
    am_hook_remove(h);
    g_trace.ev[g_trace.n] = '\0';
    // malloc: A a [work] b B, then inside B the hook's own malloc: a b only; free: C c [work] d D.
    if (strcmp(g_trace.ev, "AabB" "ab" "CcdD") != 0) {
      fprintf(stderr, "trace %s\n", g_trace.ev);
      _exit(13);
    }
    // Removing the last program hook leaves the internal observer on.
    if (!am::observed()) _exit(14);
    g_trace.n = 0;
    am_free(g_inner_block);
    if (g_trace.n != 2 || g_trace.ev[0] != 'c' || g_trace.ev[1] != 'd') _exit(15);
  });
  INFO(r.describe());
  CHECK(r.exited_ok());
}

// ThreadCache (lib/heap/thread_cache.h), driven through am_malloc/am_free: growth,
// the per-thread cap (AMMALLOC_THREAD_CACHE_MAX), the budget coming back when a
// thread exits, frees from late thread-exit destructors, cross-thread frees,
// and many threads at once with content checks.
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include "child_process.h"
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "heap/central_cache.h"
#include "core/options.h"
#include "heap/page_heap.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "core/span.h"
#include "heap/thread_cache.h"

using namespace am;

namespace {

// The background thread's GC takes idle threads' caches and its scavenger
// releases pages; both would move the exact figures these tests compare.
// Options are read at the allocator's first call, after this initialiser.
const int g_quiet_background = [] {
  setenv("AMMALLOC_GC_INTERVAL_MS", "0", 0);
  setenv("AMMALLOC_SCAVENGER", "0", 0);
  return 0;
}();

// Makes sure the allocator is fully initialised and this thread has a cache.
void warm_up() {
  void* p = am_malloc(16);
  REQUIRE(p != nullptr);
  am_free(p);
  // A second round: the first call may have been served during init.
  p = am_malloc(16);
  am_free(p);
  REQUIRE(tls_cache.state == ThreadCache::kActive);
}

size_t per_thread_max() { return static_cast<size_t>(option(kOptThreadCacheMax)); }

void fill(void* p, size_t n, uint8_t tag) { memset(p, tag, n); }
bool check(const void* p, size_t n, uint8_t tag) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != tag) return false;
  return true;
}

}  // namespace

TEST_CASE("thread cache: frees are cached in the thread", "[thread_cache]") {
  warm_up();
  std::vector<void*> v;
  for (int i = 0; i < 200; ++i) v.push_back(am_malloc(64));
  for (void* p : v) am_free(p);
  const size_t mine = tls_cache.cached_bytes();
  CHECK(mine > 0);
  CHECK(thread_cache_total_bytes() >= mine);
  CHECK(thread_cache_count() >= 1);
  // A cached object is handed out again by the next malloc of its class (LIFO).
  void* last = v.back();
  void* again = am_malloc(64);
  CHECK(std::find(v.begin(), v.end(), again) != v.end());
  (void)last;
  am_free(again);
}

TEST_CASE("thread cache: bounded by AMMALLOC_THREAD_CACHE_MAX", "[thread_cache]") {
  warm_up();
  const size_t cap = per_thread_max();
  INFO("per-thread max " << cap);
  SECTION("50 MiB of 1 KiB objects") {
    std::vector<void*> v(50 * 1024);
    for (void*& p : v) {
      p = am_malloc(1024);
      REQUIRE(p != nullptr);
    }
    for (void* p : v) am_free(p);
    INFO("cached " << tls_cache.cached_bytes() << " capacity " << tls_cache.capacity_bytes << " claimed "
                   << tls_cache.claimed_bytes);
    CHECK(tls_cache.cached_bytes() > 0);
    CHECK(tls_cache.cached_bytes() <= cap);
    CHECK(tls_cache.cached_bytes() <= tls_cache.capacity_bytes);
    CHECK(tls_cache.capacity_bytes <= tls_cache.claimed_bytes);
    CHECK(tls_cache.claimed_bytes <= cap);
  }
  SECTION("50 MiB across many classes") {
    std::vector<std::pair<void*, size_t>> v;
    size_t total = 0;
    std::mt19937 rng(42);
    while (total < (50u << 20)) {
      size_t n = 16 + rng() % 8192;
      void* p = am_malloc(n);
      REQUIRE(p != nullptr);
      v.push_back({p, n});
      total += n;
    }
    for (auto& [p, n] : v) am_free(p);
    INFO("cached " << tls_cache.cached_bytes());
    CHECK(tls_cache.cached_bytes() <= cap);
    CHECK(tls_cache.claimed_bytes <= cap);
  }
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    INFO("class " << cl);
    CHECK(tls_cache.lists[cl].length() <= tls_cache.lists[cl].max_length);
  }
  CHECK(thread_cache_total_bytes() <= static_cast<size_t>(option(kOptThreadCacheTotal)));
}

TEST_CASE("thread cache: a thread that exits returns its cache", "[thread_cache]") {
  warm_up();
  const size_t before = thread_cache_total_bytes();
  const size_t count0 = thread_cache_count();
  size_t during_total = 0, during_mine = 0, during_count = 0;
  std::thread t([&] {
    std::vector<void*> v;
    for (int i = 0; i < 1000; ++i) v.push_back(am_malloc(128));
    for (int i = 0; i < 1000; ++i) v.push_back(am_malloc(3000));
    for (void* p : v) am_free(p);
    during_mine = tls_cache.cached_bytes();
    during_total = thread_cache_total_bytes();
    during_count = thread_cache_count();
  });
  t.join();
  CHECK(during_mine > 0);
  CHECK(during_total == before + during_mine);
  CHECK(during_count == count0 + 1);
  // After join the thread's key destructor has run: its cache is flushed and
  // unregistered.
  CHECK(thread_cache_total_bytes() == before);
  CHECK(thread_cache_count() == count0);
}

TEST_CASE("thread cache: the cache budget comes back from exited threads", "[thread_cache]") {
  warm_up();
  // Threads one after another, each filling its cache: if exiting threads did
  // not give their share of the process budget (AMMALLOC_THREAD_CACHE_TOTAL,
  // 32 MiB by default) back, the later ones could cache nothing.
  const size_t total_budget = static_cast<size_t>(option(kOptThreadCacheTotal));
  std::vector<size_t> cached(total_budget / (256 << 10) + 4);
  for (size_t i = 0; i < cached.size(); ++i) {
    std::thread t([&, i] {
      std::vector<void*> v(3072);
      for (void*& p : v) p = am_malloc(1024);
      for (void* p : v) am_free(p);
      cached[i] = tls_cache.cached_bytes();
    });
    t.join();
  }
  for (size_t i = 0; i < cached.size(); ++i) {
    INFO("thread " << i << " cached " << cached[i] << ", the first cached " << cached[0]);
    CHECK(cached[i] > 0);
    CHECK(cached[i] == cached[0]);
  }
}

namespace {

pthread_key_t g_late_key;
std::atomic<int> g_late_ok{0};
std::atomic<int> g_late_state{-1};

// Runs after ammalloc's own key destructor when the allocator's key was made
// first (glibc runs key destructors in key order): then the thread cache is
// already dead and these calls take the central path.
void late_destructor(void* arg) {
  g_late_state = tls_cache.state;
  am_free(arg);
  void* q[50];
  for (void*& p : q) {
    p = am_malloc(200);
    if (p == nullptr) return;
    memset(p, 0x11, 200);
  }
  for (void* p : q) am_free(p);
  g_late_ok.fetch_add(1);
}

}  // namespace

TEST_CASE("thread cache: frees and mallocs from later thread-exit destructors still work", "[thread_cache]") {
  warm_up();
  REQUIRE(pthread_key_create(&g_late_key, late_destructor) == 0);
  const uint32_t cl = size_to_class(200);
  // Allocated by this thread, freed by the exiting one's destructor (section 2).
  void* from_main = am_malloc(200);
  const size_t count0 = thread_cache_count();
  const size_t before = thread_cache_total_bytes();
  const CentralClassStats st0 = central_class_stats(cl);
  g_late_ok = 0;
  g_late_state = -1;
  SECTION("a thread that used its cache: the destructor runs after the flush") {
    std::thread t([] {
      void* p = am_malloc(200);
      for (int i = 0; i < 100; ++i) am_free(am_malloc(200));
      pthread_setspecific(g_late_key, p);
    });
    t.join();
    CHECK(g_late_state == ThreadCache::kDead);
  }
  SECTION("a thread whose first allocator call happens in a destructor") {
    // The cache is activated during thread exit; pthread runs the allocator's
    // destructor in a later round, so it must still be flushed.
    std::thread t([from_main] { pthread_setspecific(g_late_key, from_main); });
    from_main = nullptr;
    t.join();
    CHECK(g_late_state == ThreadCache::kUninit);
  }
  CHECK(g_late_ok == 1);
  CHECK(thread_cache_count() == count0);
  CHECK(thread_cache_total_bytes() == before);
  // The exited thread holds nothing of the class: the central cache has the
  // same objects outstanding as before, less the one freed for the main thread.
  const CentralClassStats st1 = central_class_stats(cl);
  const size_t objs = class_info(cl).objects;
  const long long out0 = static_cast<long long>(st0.spans * objs - st0.free_objects);
  const long long out1 = static_cast<long long>(st1.spans * objs - st1.free_objects);
  CHECK(out1 <= out0);
  am_free(from_main);
  pthread_key_delete(g_late_key);
}

TEST_CASE("thread cache: objects freed by another thread are reused", "[thread_cache]") {
  warm_up();
  // A class nothing else in this test program uses before this test.
  const size_t size = 20000;
  const uint32_t cl = size_to_class(size);
  const int n = 200;
  std::vector<void*> objs(2 * n);
  std::thread producer([&] {
    for (void*& p : objs) {
      p = am_malloc(size);
      fill(p, size, 0x3C);
    }
  });
  producer.join();
  // The spans the producer's objects live in.
  std::set<Span*> spans;
  for (void* p : objs) spans.insert(pagemap_span(reinterpret_cast<uintptr_t>(p)));
  const size_t spans_before = central_class_stats(cl).spans;

  std::vector<void*> reused;
  std::thread consumer([&] {
    // Free every other object (the rest keep every span alive), then allocate
    // as many again: they must come from the producer's spans, not new ones.
    for (int i = 1; i < 2 * n; i += 2) {
      REQUIRE(check(objs[i], size, 0x3C));
      am_free(objs[i]);
    }
    for (int i = 0; i < n; ++i) reused.push_back(am_malloc(size));
  });
  consumer.join();
  size_t outside = 0;
  for (void* p : reused) outside += spans.count(pagemap_span(reinterpret_cast<uintptr_t>(p))) == 0;
  CHECK(outside == 0);
  CHECK(central_class_stats(cl).spans == spans_before);
  for (int i = 0; i < 2 * n; i += 2) CHECK(check(objs[i], size, 0x3C));
  for (int i = 0; i < 2 * n; i += 2) am_free(objs[i]);
  for (void* p : reused) am_free(p);
}

TEST_CASE("thread cache: 16 threads allocate and free concurrently", "[thread_cache]") {
  warm_up();
  const size_t count0 = thread_cache_count();
  constexpr int kThreads = 16;
  constexpr int kOps = 20000;
  std::mutex mu;
  std::vector<std::pair<void*, size_t>> exchange;  // blocks handed between threads
  std::atomic<int> bad{0};

  auto tag_of = [](void* p) { return static_cast<uint8_t>(reinterpret_cast<uintptr_t>(p) >> 4); };
  auto fill_block = [&](void* p, size_t n) {
    if (n <= 4096) {
      memset(p, tag_of(p), n);
    } else {
      memset(p, tag_of(p), 64);
      memset(static_cast<char*>(p) + n - 64, tag_of(p), 64);
    }
  };
  auto check_block = [&](void* p, size_t n) {
    if (n <= 4096) return check(p, n, tag_of(p));
    return check(p, 64, tag_of(p)) && check(static_cast<char*>(p) + n - 64, 64, tag_of(p));
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      std::vector<std::pair<void*, size_t>> live(256, {nullptr, 0});
      for (int op = 0; op < kOps; ++op) {
        auto& slot = live[rng() % live.size()];
        if (slot.first) {
          if (!check_block(slot.first, slot.second)) bad.fetch_add(1);
          if (rng() % 8 == 0) {
            std::lock_guard<std::mutex> g(mu);
            exchange.push_back(slot);
          } else if (rng() % 16 == 0) {
            size_t n = 1 + rng() % 20000;
            void* q = am_realloc(slot.first, n);
            if (q == nullptr) {
              bad.fetch_add(1);
            } else {
              size_t keep = n < slot.second ? n : slot.second;
              uint8_t old_tag = tag_of(slot.first);
              const uint8_t* b = static_cast<const uint8_t*>(q);
              size_t head = keep < 64 ? keep : 64;
              for (size_t i = 0; i < head; ++i)
                if (b[i] != old_tag) {
                  bad.fetch_add(1);
                  break;
                }
              fill_block(q, n);
              slot = {q, n};
              continue;
            }
          } else {
            am_free(slot.first);
          }
          slot = {nullptr, 0};
        } else {
          uint32_t r = rng() % 100;
          size_t n = r < 70 ? 1 + rng() % 256 : r < 95 ? 1 + rng() % 8192 : r < 99 ? 1 + rng() % 65536
                                                                             : 262145 + rng() % 300000;
          void* p = am_malloc(n);
          if (p == nullptr) {
            bad.fetch_add(1);
            continue;
          }
          fill_block(p, n);
          slot = {p, n};
        }
        if (op % 64 == 0) {
          std::pair<void*, size_t> got{nullptr, 0};
          {
            std::lock_guard<std::mutex> g(mu);
            if (!exchange.empty()) {
              got = exchange.back();
              exchange.pop_back();
            }
          }
          if (got.first) {
            if (!check_block(got.first, got.second)) bad.fetch_add(1);
            am_free(got.first);
          }
        }
      }
      for (auto& s : live)
        if (s.first) {
          if (!check_block(s.first, s.second)) bad.fetch_add(1);
          am_free(s.first);
        }
    });
  }
  for (std::thread& th : threads) th.join();
  for (auto& [p, n] : exchange) {
    if (!check_block(p, n)) bad.fetch_add(1);
    am_free(p);
  }
  CHECK(bad == 0);
  CHECK(thread_cache_count() == count0);
  PageHeapStats st = page_heap_stats();
  CHECK(st.free_bytes + st.released_bytes + st.small_span_bytes + st.large_bytes > 0);
}

// Run in a fresh process by the next case (exec of this binary): the
// allocator's init must find every pthread key taken.
TEST_CASE("thread cache child: no pthread key left at init", "[.][nokey_child]") {
  pthread_key_t k;
  int taken = 0;
  while (pthread_key_create(&k, nullptr) == 0) ++taken;
  REQUIRE(taken > 0);
  // Key 0 exists now (somebody's); the allocator must not write to it.
  auto check = [] {
    void* before = pthread_getspecific(0);
    for (int i = 0; i < 1000; ++i) am_free(am_malloc(64 + (i % 8) * 16));
    CHECK(pthread_getspecific(0) == before);
    CHECK(tls_cache.state != ThreadCache::kActive);  // no key: no cache
  };
  check();
  std::thread t(check);
  t.join();
  CHECK(thread_cache_count() == 0);
}

TEST_CASE("thread cache: with no pthread key left, init leaves key 0 alone and threads use no cache",
          "[thread_cache]") {
  SelfRun r = run_self("[nokey_child]", {}, {});
  INFO(r.out << "exit status " << r.status);
  REQUIRE(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
}

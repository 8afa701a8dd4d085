// Thread-cache GC (lib/policy/thread_cache_gc.cc, AC-7): the background thread takes
// back the cached objects of threads that went idle, even of threads blocked
// forever that never call malloc again, and another thread reuses that memory;
// a direct GC pass never reclaims a thread that is running, and forced passes
// racing with an owner in a tight malloc/free loop never corrupt an object.
//
// The main thread never allocates from the am_ heap here (Catch2 and the STL
// use the system malloc), so the thread-cache figures are the workers' alone.
// Catch2 assertions are not thread-safe: workers record, the main thread checks.
// This test also runs under ThreadSanitizer (suite 'threaded').
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>

#include "option_helpers.h"
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "policy/background.h"
#include "os/os.h"
#include "heap/thread_cache.h"
#include "heap/thread_cache_revoke.h"
#include "policy/thread_cache_gc.h"

namespace {


uint64_t now_ns() { return am::os::now_ns(); }
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

uint8_t tag_of(uintptr_t a, uint32_t b) { return static_cast<uint8_t>((a * 131 + b * 7 + 1) | 1); }
void fill(void* p, size_t n, uint8_t tag) { memset(p, tag, n); }
bool intact(const void* p, size_t n, uint8_t tag) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != tag) return false;
  return true;
}

// Turns the background GC off and waits until no round that read the old
// interval can still be running: the loop reads the options, sleeps, counts a
// wake-up, then works, so two wake-ups after the change the stale round has
// finished. The scavenge interval is shortened meanwhile (the sleep is the
// smaller of the two intervals) so that this takes milliseconds, not seconds.
void quiesce_background_gc() {
  set_opt("AMMALLOC_GC_INTERVAL_MS", 0);
  if (!am::background_counters().running) return;
  const long long interval = opt("AMMALLOC_SCAVENGE_INTERVAL_MS");
  const long long scavenger = opt("AMMALLOC_SCAVENGER");
  set_opt("AMMALLOC_SCAVENGE_INTERVAL_MS", 10);
  set_opt("AMMALLOC_SCAVENGER", 1);
  const size_t start = prop("ammalloc.background_wakeups");
  const uint64_t deadline = now_ns() + 10'000'000'000ull;  // a stale sleep is at most a few s
  while (prop("ammalloc.background_wakeups") < start + 2 && now_ns() < deadline) sleep_ms(5);
  CHECK(prop("ammalloc.background_wakeups") >= start + 2);
  set_opt("AMMALLOC_SCAVENGER", scavenger);
  set_opt("AMMALLOC_SCAVENGE_INTERVAL_MS", interval);
}

// A gate the workers block on without touching the am_ heap.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  bool open = false;

  void arrive_and_wait() {
    std::unique_lock<std::mutex> l(m);
    ++arrived;
    cv.notify_all();
    cv.wait(l, [&] { return open; });
  }
  bool wait_arrivals(int n, int timeout_ms) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return arrived >= n; });
  }
  void release() {
    std::lock_guard<std::mutex> l(m);
    open = true;
    cv.notify_all();
  }
};

// Opens the gate and joins, however the test case ends (a REQUIRE that fails
// while workers are blocked must not hang the test in a join).
struct JoinAll {
  Gate& gate;
  std::vector<std::thread>& threads;
  std::atomic<bool>* stop = nullptr;
  ~JoinAll() {
    if (stop) stop->store(true);
    gate.release();
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
  }
};

}  // namespace

TEST_CASE("gc: caches of 64 threads blocked forever are reclaimed and reused", "[gc][AC-7]") {
  constexpr int kThreads = 64;
  constexpr int kObjects = 2000;
  constexpr size_t kSize = 256;
  constexpr int kGcMs = 200;

  // 64 caches of up to ~512 KiB would exhaust the default 32 MiB total budget
  // and leave the last threads without a cache; give them room.
  OptionGuard total("AMMALLOC_THREAD_CACHE_TOTAL", 256ll << 20);
  OptionGuard gc("AMMALLOC_GC_INTERVAL_MS", kGcMs);
  am_reset();  // counters at zero, nothing cached anywhere
  REQUIRE(prop("ammalloc.thread_cache_free_bytes") == 0);
  REQUIRE(prop("ammalloc.gc_caches_reclaimed") == 0);

  // The cache grows with use (slow start, then one batch per miss): one round
  // of 2000 mallocs and frees leaves a few dozen objects, the second and third
  // leave ~2000 (~500 KiB) in every thread.
  constexpr int kRounds = 3;
  std::vector<std::vector<void*>> freed(kThreads, std::vector<void*>(kRounds * kObjects));
  std::vector<size_t> cached(kThreads, 0);
  std::atomic<int> bad_after_wake{0};
  Gate gate;
  std::vector<std::thread> threads;
  JoinAll join_all{gate, threads};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        void** mine = &freed[t][static_cast<size_t>(r) * kObjects];
        for (int i = 0; i < kObjects; ++i) {
          mine[i] = am_malloc(kSize);
          if (mine[i] != nullptr) fill(mine[i], kSize, static_cast<uint8_t>(t));
        }
        for (int i = 0; i < kObjects; ++i) am_free(mine[i]);
      }
      cached[t] = am::tls_cache.cached_bytes();
      gate.arrive_and_wait();  // blocked: no malloc, no free until released
      // The GC took this cache while we slept: the next operations go through
      // the slow path, and the cache works again.
      void* p[64];
      for (int i = 0; i < 64; ++i) {
        p[i] = am_malloc(kSize);
        if (p[i] == nullptr) {
          bad_after_wake.fetch_add(1);
          continue;
        }
        fill(p[i], kSize, static_cast<uint8_t>(i));
      }
      for (int i = 0; i < 64; ++i) {
        if (p[i] == nullptr) continue;
        if (!intact(p[i], kSize, static_cast<uint8_t>(i))) bad_after_wake.fetch_add(1);
        am_free(p[i]);
      }
    });
  }

  REQUIRE(gate.wait_arrivals(kThreads, 60'000));
  size_t filled = 0;
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t << " cached " << cached[t]);
    REQUIRE(std::find(freed[t].begin(), freed[t].end(), nullptr) == freed[t].end());
    CHECK(cached[t] >= 128 * 1024);  // every thread filled a cache of its own
    filled += cached[t];
  }

  // From here on no ammalloc call but reading numeric properties. The GC needs
  // two visits one interval apart to see a cache idle, so about three intervals
  // after the last thread blocked (plus what is left of a sleep begun before the
  // option changed: the first round may sleep up to 1 s). The bound is 30 s
  // because ThreadSanitizer on a loaded 2-core machine can slow 64 threads by
  // 20x; the loop ends as soon as the caches are empty (took_ms says when).
  const uint64_t start = now_ns();
  size_t left = prop("ammalloc.thread_cache_free_bytes");
  while (left >= 64 * 1024 && now_ns() - start < 30'000'000'000ull) {
    sleep_ms(10);
    left = prop("ammalloc.thread_cache_free_bytes");
  }
  const double took_ms = static_cast<double>(now_ns() - start) / 1e6;
  INFO("bytes cached by the 64 threads when they blocked: " << filled << "; heap "
                                                            << prop("generic.heap_size"));
  INFO("thread-cache bytes left " << left << " after " << took_ms << " ms");
  CHECK(left < 64 * 1024);
  // The main thread has no cache and nobody else runs: exactly nothing is left.
  CHECK(left == 0);
  CHECK(prop("ammalloc.gc_caches_reclaimed") >= kThreads);
  CHECK(prop("ammalloc.gc_bytes_reclaimed") >= filled);
  CHECK(prop("ammalloc.gc_runs") >= 2);

  // Another thread allocates the same size: it must get back the memory the
  // blocked threads freed, not new memory from the OS. 16 MiB: half of what
  // the threads had live at once (when they run one after the other, as under
  // TSan, the GC already takes the first caches while the last threads still
  // run, and those reuse them: the heap can be smaller than 64 full caches).
  std::unordered_set<void*> recorded;
  for (const auto& v : freed) recorded.insert(v.begin(), v.end());
  const size_t heap_before = prop("generic.heap_size");
  size_t reused = 0, got_count = 0;
  std::thread reuser([&] {
    std::vector<void*> got(static_cast<size_t>(kThreads) * kObjects / 2);
    for (void*& p : got) p = am_malloc(kSize);
    for (void* p : got) {
      got_count += p != nullptr;
      reused += recorded.count(p);
    }
    for (void* p : got) am_free(p);
  });
  reuser.join();
  INFO("reused " << reused << " of " << got_count);
  CHECK(got_count == static_cast<size_t>(kThreads) * kObjects / 2);
  CHECK(prop("generic.heap_size") == heap_before);
  CHECK(reused * 10 >= got_count * 9);  // at least 90% are the very same addresses

  gate.release();
  for (std::thread& th : threads) th.join();
  CHECK(bad_after_wake.load() == 0);
}

TEST_CASE("gc: a thread that keeps allocating is never reclaimed as idle", "[gc]") {
  quiesce_background_gc();
  am_thread_cache_flush();  // the main thread holds nothing the GC could take

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::atomic<int> corrupt{0};
  std::atomic<size_t> cached_when_stopped{0};
  Gate gate;
  std::vector<std::thread> threads;
  JoinAll join_all{gate, threads, &stop};
  threads.emplace_back([&] {
    constexpr size_t kSizes[] = {32, 256, 1024};
    void* p[48];
    uint32_t round = 0;
    auto one_round = [&] {
      ++round;
      for (int i = 0; i < 48; ++i) {
        p[i] = am_malloc(kSizes[i % 3]);
        if (p[i] == nullptr) {
          corrupt.fetch_add(1);
          continue;
        }
        fill(p[i], kSizes[i % 3], tag_of(i, round));
      }
      for (int i = 0; i < 48; ++i) {
        if (p[i] == nullptr) continue;
        if (!intact(p[i], kSizes[i % 3], tag_of(i, round))) corrupt.fetch_add(1);
        am_free(p[i]);
      }
    };
    while (!stop.load(std::memory_order_relaxed)) {
      one_round();
      rounds.fetch_add(1, std::memory_order_release);
    }
    cached_when_stopped = am::tls_cache.cached_bytes();
    gate.arrive_and_wait();
    // Reclaimed while blocked: the cache must work again.
    for (int r = 0; r < 100; ++r) one_round();
  });

  const size_t reclaimed0 = am::thread_cache_gc_counters().caches_reclaimed;
  // idle_ns = 0: a cache is idle if its seq did not move since the previous
  // visit. Between two passes the worker runs a whole round of mallocs and
  // frees: the round counter, read after a pass, must go up by two (the first
  // increment may end a round whose operations all came before the pass), so
  // its seq always moved and no pass may take its cache.
  for (int pass = 0; pass < 200; ++pass) {
    am::thread_cache_gc(now_ns(), 0, false);
    const uint64_t seen = rounds.load(std::memory_order_acquire);
    const uint64_t deadline = now_ns() + 30'000'000'000ull;  // TSan under load
    while (rounds.load(std::memory_order_acquire) < seen + 2 && now_ns() < deadline) std::this_thread::yield();
    REQUIRE(rounds.load(std::memory_order_acquire) >= seen + 2);
  }
  CHECK(am::thread_cache_gc_counters().caches_reclaimed == reclaimed0);
  stop = true;
  REQUIRE(gate.wait_arrivals(1, 60'000));
  CHECK(cached_when_stopped.load() > 0);  // its cache kept working throughout
  CHECK(corrupt.load() == 0);

  // Now the worker is blocked: the first pass notes its seq, the second finds
  // it unchanged and takes the cache (the only one there is).
  am::thread_cache_gc(now_ns(), 0, false);
  const size_t bytes = am::thread_cache_gc(now_ns(), 0, false);
  CHECK(am::thread_cache_gc_counters().caches_reclaimed == reclaimed0 + 1);
  CHECK(bytes == cached_when_stopped.load());
  CHECK(prop("ammalloc.thread_cache_free_bytes") == 0);

  gate.release();
  threads[0].join();
  CHECK(corrupt.load() == 0);
}

TEST_CASE("gc: forced passes racing with an owner in a tight malloc/free loop corrupt nothing", "[gc]") {
  // The background GC may run too: one more racer, and nothing below depends
  // on how many passes took the cache.
  am_thread_cache_flush();
  const size_t in_use_before = prop("generic.current_allocated_bytes");

  constexpr int kSlots = 512;
  constexpr size_t kSizes[] = {8, 16, 48, 64, 128, 256, 520, 1024, 2048, 4096, 8192, 32768};
  constexpr size_t kNumSizes = sizeof kSizes / sizeof kSizes[0];
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ops{0};
  std::atomic<int> corrupt{0}, failed{0}, duplicates{0};
  Gate unused;
  std::vector<std::thread> threads;
  JoinAll join_all{unused, threads, &stop};
  threads.emplace_back([&] {
    struct Slot {
      void* p;
      size_t n;
      uint8_t tag;
    };
    std::vector<Slot> slots(kSlots, Slot{nullptr, 0, 0});
    uint32_t gen = 0;
    uint64_t count = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      ++gen;
      for (int i = 0; i < kSlots; ++i) {
        Slot& s = slots[i];
        if (s.p != nullptr) {
          if (!intact(s.p, s.n, s.tag)) corrupt.fetch_add(1);
          am_free(s.p);
        }
        s.n = kSizes[(static_cast<size_t>(i) * 7 + gen) % kNumSizes];
        s.tag = tag_of(i, gen);
        s.p = am_malloc(s.n);
        if (s.p == nullptr) {
          failed.fetch_add(1);
          continue;
        }
        fill(s.p, s.n, s.tag);
        ++count;
        if ((count & 63) == 0) ops.store(count, std::memory_order_relaxed);
      }
    }
    std::unordered_set<void*> live;
    for (Slot& s : slots) {
      if (s.p == nullptr) continue;
      if (!live.insert(s.p).second) duplicates.fetch_add(1);
      if (!intact(s.p, s.n, s.tag)) corrupt.fetch_add(1);
    }
    for (Slot& s : slots) am_free(s.p);
  });

  const size_t reclaimed0 = am::thread_cache_gc_counters().caches_reclaimed;
  constexpr int kPasses = 300;
  size_t bytes = 0;
  uint64_t last_ops = 0;
  for (int i = 0; i < kPasses; ++i) {
    bytes += am::thread_cache_gc(now_ns(), 0, /*force=*/true);
    // Let the owner refill between passes, so that most passes find a full
    // cache and an owner in the middle of its loop.
    const uint64_t deadline = now_ns() + 30'000'000'000ull;  // TSan under load
    while (ops.load(std::memory_order_relaxed) < last_ops + 64 && now_ns() < deadline) std::this_thread::yield();
    last_ops = ops.load(std::memory_order_relaxed);
  }
  stop = true;
  threads[0].join();
  const size_t reclaimed = am::thread_cache_gc_counters().caches_reclaimed - reclaimed0;
  INFO("passes " << kPasses << ", caches reclaimed " << reclaimed << ", bytes " << bytes << ", owner ops "
                 << ops.load());
  CHECK(corrupt.load() == 0);
  CHECK(duplicates.load() == 0);
  CHECK(failed.load() == 0);
  CHECK(reclaimed >= 1);
  CHECK(bytes > 0);
  // Every object came back exactly once: the heap's in-use figure is where it
  // was (a lost object would stay "in use", a doubly freed one would not).
  CHECK(prop("generic.current_allocated_bytes") == in_use_before);
  CHECK(prop("ammalloc.thread_cache_free_bytes") == 0);
}

TEST_CASE("revoke mechanism: revoke_all empties a blocked thread's cache; the owner resumes; GC counters untouched",
          "[gc]") {
  quiesce_background_gc();
  REQUIRE(am::thread_cache_revoke_available());
  Gate gate;
  std::vector<std::thread> threads;
  JoinAll join{gate, threads};
  std::atomic<size_t> cached{0};
  std::atomic<int> corrupt{0};
  threads.emplace_back([&] {
    void* p[64];
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 64; ++i) p[i] = am_malloc(48);
      for (int i = 0; i < 64; ++i) am_free(p[i]);
    }
    cached = am::tls_cache.cached_bytes();
    gate.arrive_and_wait();
    // Revoked while blocked: the cache must work again.
    for (int i = 0; i < 64; ++i) {
      p[i] = am_malloc(48);
      if (p[i] == nullptr) corrupt.fetch_add(1);
      else fill(p[i], 48, 0x5a);
    }
    for (int i = 0; i < 64; ++i)
      if (p[i] != nullptr && !intact(p[i], 48, 0x5a)) corrupt.fetch_add(1);
    for (int i = 0; i < 64; ++i) am_free(p[i]);
  });
  REQUIRE(gate.wait_arrivals(1, 60'000));
  REQUIRE(cached.load() > 0);
  const am::GcCounters before = am::thread_cache_gc_counters();
  // Every cache is revoked (and flushed), ours too: at least the worker's bytes.
  CHECK(am::thread_cache_revoke_all() >= cached.load());
  CHECK(prop("ammalloc.thread_cache_free_bytes") == 0);
  // The mechanism counts nothing: passes and reclaims are the GC policy's.
  const am::GcCounters after = am::thread_cache_gc_counters();
  CHECK(after.runs == before.runs);
  CHECK(after.caches_reclaimed == before.caches_reclaimed);
  gate.release();
  threads[0].join();
  CHECK(corrupt.load() == 0);
}

TEST_CASE("gc: a forced pass waiting on a stopped thread does not stop other threads from starting and exiting",
          "[gc]") {
  // A forced pass (am_reset) waits as long as a thread stays stopped inside a
  // fast-path operation (seq odd). It used to hold the registry lock for the
  // whole pass, so meanwhile every new thread hung in its first malloc
  // (registry_add) and every exiting thread in its cache's destructor. The
  // stopped thread is simulated: a worker makes its own seq odd and then
  // blocks on a gate without allocating.
  quiesce_background_gc();
  Gate stopped, restored;
  am::ThreadCache* victim = nullptr;
  uint32_t victim_seq = 0;
  std::thread worker([&] {
    am_free(am_malloc(64));  // an active, registered cache
    victim = &am::tls_cache;
    victim_seq = __atomic_load_n(&victim->seq, __ATOMIC_SEQ_CST);
    __atomic_store_n(&victim->seq, victim_seq | 1, __ATOMIC_SEQ_CST);
    stopped.arrive_and_wait();  // "stopped" until the main thread ends the operation
    am_free(am_malloc(64));
    restored.arrive_and_wait();
  });
  REQUIRE(stopped.wait_arrivals(1, 10000));
  std::atomic<bool> gc_done{false};
  std::thread gc([&] {
    am::thread_cache_gc(now_ns(), 0, /*force=*/true);
    gc_done = true;
  });
  sleep_ms(50);  // the pass reaches the stopped cache and waits there
  std::atomic<bool> newcomer_done{false};
  std::thread newcomer([&] {
    for (int i = 0; i < 100; ++i) am_free(am_malloc(64 + i));
    newcomer_done = true;
  });
  const uint64_t deadline = now_ns() + 5'000'000'000ull;
  while (!newcomer_done && now_ns() < deadline) sleep_ms(1);
  const bool newcomer_ran = newcomer_done;
  const bool gc_was_waiting = !gc_done;
  // End the "operation": the pass can take the cache and finish.
  __atomic_store_n(&victim->seq, (victim_seq | 1) + 1, __ATOMIC_SEQ_CST);
  newcomer.join();
  gc.join();
  stopped.release();
  REQUIRE(restored.wait_arrivals(1, 10000));
  restored.release();
  worker.join();
  CHECK(gc_was_waiting);  // the case tested what it means to
  CHECK(newcomer_ran);
}

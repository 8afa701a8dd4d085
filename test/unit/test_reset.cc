// am_reset (FR-4, AC-4) and the run-time options API (am_option_get/set).
//
// am_reset empties every thread cache (the caller's, those of idle threads
// blocked on a condition variable, through the GC protocol), returns all free
// memory to the OS and zeroes the counters. After it the statistics are back
// at their baseline, only the memory the test still holds counts as in use,
// and allocation works in every thread.
//
// The background thread is kept quiet (GC off, scavenger off) so that nothing
// but the test moves the figures. Catch2 assertions stay on the main thread.
#include <errno.h>

#include <atomic>
#include <catch2/catch.hpp>

#include "option_helpers.h"
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "policy/background.h"
#include "core/options.h"
#include "os/os.h"
#include "heap/thread_cache.h"

namespace {


void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// GC off, scavenger off, and no round of the background thread that read the
// earlier options left to run. A round reads the options, sleeps, counts a
// wake-up and works; the scavenger is switched on with a 10 ms interval and an
// hour's release delay (it releases nothing) until two wake-ups have passed,
// then off: a round still in flight can only scavenge with that hour's delay.
void quiet_background() {
  set_opt("AMMALLOC_GC_INTERVAL_MS", 0);
  set_opt("AMMALLOC_RELEASE_DELAY_MS", 3600 * 1000);
  if (am::background_counters().running) {
    set_opt("AMMALLOC_SCAVENGE_INTERVAL_MS", 10);
    set_opt("AMMALLOC_SCAVENGER", 1);
    const size_t start = prop("ammalloc.background_wakeups");
    const uint64_t deadline = am::os::now_ns() + 10'000'000'000ull;
    while (prop("ammalloc.background_wakeups") < start + 2 && am::os::now_ns() < deadline) sleep_ms(5);
    REQUIRE(prop("ammalloc.background_wakeups") >= start + 2);
  }
  set_opt("AMMALLOC_SCAVENGER", 0);
}

// The figures am_reset brings back to their baseline.
const char* const kFigures[] = {
    "generic.current_allocated_bytes",    "ammalloc.thread_cache_free_bytes",
    "ammalloc.pageheap_free_bytes",       "ammalloc.central_cache_free_bytes",
    "ammalloc.transfer_cache_free_bytes", "ammalloc.large_objects",
    "ammalloc.large_object_bytes",        "ammalloc.central_lock_acquisitions",
    "ammalloc.gc_runs",                   "ammalloc.gc_caches_reclaimed",
    "ammalloc.gc_bytes_reclaimed",        "ammalloc.scavenger_bytes_released",
};

std::map<std::string, size_t> snapshot() {
  std::map<std::string, size_t> m;
  for (const char* f : kFigures) m[f] = prop(f);
  return m;
}

std::string show(const std::map<std::string, size_t>& m) {
  std::string s;
  for (const auto& [k, v] : m) s += k + "=" + std::to_string(v) + " ";
  return s;
}

uint8_t tag_of(size_t i, size_t round) { return static_cast<uint8_t>((i * 31 + round * 7) | 1); }
bool intact(const void* p, size_t n, uint8_t tag) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != tag) return false;
  return true;
}

// A mix of small and large allocations, freed again (cache and page heap fill
// up), with every object pattern-checked. Returns the number of bad objects.
int churn(size_t seed, int rounds) {
  static constexpr size_t kSizes[] = {8, 24, 64, 100, 256, 1000, 4096, 20000, 100000, 300 * 1024, 1 << 20};
  constexpr size_t kN = sizeof kSizes / sizeof kSizes[0];
  int bad = 0;
  void* p[200];
  for (int r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < 200; ++i) {
      size_t n = kSizes[(i + seed + static_cast<size_t>(r)) % kN];
      p[i] = am_malloc(n);
      if (p[i] == nullptr) {
        ++bad;
        continue;
      }
      memset(p[i], tag_of(i, r), n < 4096 ? n : 4096);
    }
    for (size_t i = 0; i < 200; ++i) {
      size_t n = kSizes[(i + seed + static_cast<size_t>(r)) % kN];
      if (p[i] == nullptr) continue;
      if (!intact(p[i], n < 4096 ? n : 4096, tag_of(i, r))) ++bad;
      am_free(p[i]);
    }
  }
  return bad;
}

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
  void wait_arrivals(int n) {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return arrived >= n; });
  }
  void release() {
    std::lock_guard<std::mutex> l(m);
    open = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("reset: caches emptied, free memory released, counters zeroed; allocation still works",
          "[reset][AC-4]") {
  OptionGuard g1("AMMALLOC_GC_INTERVAL_MS"), g2("AMMALLOC_RELEASE_DELAY_MS"), g3("AMMALLOC_SCAVENGE_INTERVAL_MS"),
      g4("AMMALLOC_SCAVENGER");
  quiet_background();

  am_reset();
  const auto baseline = snapshot();
  INFO("baseline: " << show(baseline));
  CHECK(baseline.at("ammalloc.thread_cache_free_bytes") == 0);
  CHECK(baseline.at("ammalloc.pageheap_free_bytes") == 0);
  CHECK(baseline.at("ammalloc.central_lock_acquisitions") == 0);
  CHECK(baseline.at("ammalloc.gc_runs") == 0);

  // Memory the test holds across the resets: it, and only it, stays in use.
  std::vector<void*> held;
  size_t held_bytes = 0;
  for (size_t n : {16, 16, 48, 200, 1000, 5000, 70000, 512 * 1024, 3 << 20}) {
    void* p = am_malloc(n);
    REQUIRE(p != nullptr);
    memset(p, 0x11, n);
    held.push_back(p);
    held_bytes += am_malloc_usable_size(p);
  }

  // 8 threads churn: 4 exit, 4 stay blocked (idle, caches full) through the
  // reset. Some of their objects are freed by the main thread (cross-thread).
  constexpr int kThreads = 8;
  Gate gate;
  std::atomic<int> bad{0};
  std::atomic<size_t> idle_cached{0};
  std::vector<void*> handed(kThreads, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      bad += churn(static_cast<size_t>(t), 20);
      handed[t] = am_malloc(640);
      if (t % 2 == 0) return;  // exits: the cache goes back at thread exit
      idle_cached += am::tls_cache.cached_bytes();
      gate.arrive_and_wait();  // idle through the reset
      bad += churn(static_cast<size_t>(t) + 100, 5);
    });
  }
  struct Joiner {
    Gate& g;
    std::vector<std::thread>& ts;
    ~Joiner() {
      g.release();
      for (std::thread& th : ts)
        if (th.joinable()) th.join();
    }
  } joiner{gate, threads};
  gate.wait_arrivals(kThreads / 2);
  for (int t = 0; t < kThreads; t += 2) threads[t].join();
  bad += churn(1000, 20);  // and the main thread
  for (void*& p : handed) {
    am_free(p);  // objects of other threads, freed here
    p = nullptr;
  }

  const auto busy = snapshot();
  INFO("before am_reset: " << show(busy));
  REQUIRE(idle_cached.load() > 0);  // the idle threads hold cached objects
  REQUIRE(busy.at("ammalloc.thread_cache_free_bytes") > idle_cached.load());  // and so do we
  REQUIRE(busy.at("ammalloc.pageheap_free_bytes") > 0);      // freed large blocks
  REQUIRE(busy.at("ammalloc.central_lock_acquisitions") > 0);

  am_reset();
  const auto after = snapshot();
  const size_t wakeups = prop("ammalloc.background_wakeups");
  INFO("after am_reset: " << show(after));
  CHECK(after.at("ammalloc.thread_cache_free_bytes") == 0);
  CHECK(after.at("ammalloc.transfer_cache_free_bytes") == 0);
  CHECK(after.at("ammalloc.pageheap_free_bytes") == 0);
  CHECK(after.at("ammalloc.central_lock_acquisitions") == 0);
  CHECK(after.at("ammalloc.gc_runs") == 0);
  CHECK(after.at("ammalloc.gc_caches_reclaimed") == 0);
  CHECK(after.at("ammalloc.gc_bytes_reclaimed") == 0);
  CHECK(after.at("ammalloc.scavenger_bytes_released") == 0);
  CHECK(wakeups <= 1);  // zeroed; one wake-up may land between the two calls
  CHECK(after.at("generic.current_allocated_bytes") == baseline.at("generic.current_allocated_bytes") + held_bytes);
  CHECK(after.at("ammalloc.large_objects") == baseline.at("ammalloc.large_objects") + 2);
  size_t peak = 0, resident = 0;
  am_memory_usage(&resident, &peak);
  CHECK(peak == resident);  // the peak starts again from now

  // Allocation works: here, and in the idle threads whose caches were taken.
  CHECK(churn(7, 5) == 0);
  gate.release();
  for (std::thread& th : threads)
    if (th.joinable()) th.join();
  CHECK(bad.load() == 0);
  for (void* p : held) CHECK(static_cast<uint8_t*>(p)[0] == 0x11);

  // Everything given back: a last reset finds exactly the baseline.
  for (void* p : held) am_free(p);
  am_reset();
  const auto end = snapshot();
  INFO("after the last am_reset: " << show(end));
  CHECK(end == baseline);
}

TEST_CASE("reset: am_thread_cache_flush empties the calling thread's cache only", "[reset]") {
  OptionGuard g1("AMMALLOC_GC_INTERVAL_MS"), g2("AMMALLOC_RELEASE_DELAY_MS"), g3("AMMALLOC_SCAVENGE_INTERVAL_MS"),
      g4("AMMALLOC_SCAVENGER");
  quiet_background();
  am_reset();
  Gate gate;
  std::thread other([&] {
    churn(3, 10);
    gate.arrive_and_wait();
  });
  gate.wait_arrivals(1);
  const size_t others = prop("ammalloc.thread_cache_free_bytes");
  REQUIRE(others > 0);
  CHECK(churn(4, 10) == 0);
  CHECK(prop("ammalloc.thread_cache_free_bytes") > others);
  am_thread_cache_flush();
  CHECK(prop("ammalloc.thread_cache_free_bytes") == others);
  gate.release();
  other.join();
  CHECK(prop("ammalloc.thread_cache_free_bytes") == 0);
  am_thread_cache_flush();  // an empty cache: nothing to do
  CHECK(prop("ammalloc.thread_cache_free_bytes") == 0);
}

TEST_CASE("options: am_option_get and am_option_set", "[options]") {
  long long v = 12345;
  // Unknown names, and NULL.
  CHECK(am_option_get("AMMALLOC_NO_SUCH_OPTION", &v) == 0);
  CHECK(v == 12345);
  CHECK(am_option_get(nullptr, &v) == 0);
  CHECK(am_option_get("AMMALLOC_SCAVENGER", nullptr) == 0);
  CHECK(am_option_set("AMMALLOC_NO_SUCH_OPTION", 1) == EINVAL);
  CHECK(am_option_set(nullptr, 1) == EINVAL);
  CHECK(am_option_set("ammalloc_scavenger", 1) == EINVAL);  // names are exact

  // Every option of the table is known; run-time ones accept their current
  // value and refuse one past either end of their range; start-up-only ones
  // refuse any value with EPERM and keep theirs.
  for (int i = 0; i < am::kNumOptions; ++i) {
    const am::OptionDef& def = am::kOptionTable[i];
    INFO("option " << def.name);
    long long cur = 0;
    REQUIRE(am_option_get(def.name, &cur) == 1);
    if (!def.runtime) {
      CHECK(am_option_set(def.name, cur) == EPERM);
      CHECK(am_option_set(def.name, def.max) == EPERM);
      continue;
    }
    CHECK(am_option_set(def.name, cur) == 0);
    if (def.max < INT64_MAX) CHECK(am_option_set(def.name, static_cast<long long>(def.max) + 1) == EINVAL);
    if (def.min > INT64_MIN) CHECK(am_option_set(def.name, static_cast<long long>(def.min) - 1) == EINVAL);
    long long now = 0;
    REQUIRE(am_option_get(def.name, &now) == 1);
    CHECK(now == cur);  // a refused value changes nothing
  }

  // A start-up-only option.
  long long stats_on_exit = -1;
  REQUIRE(am_option_get("AMMALLOC_STATS_ON_EXIT", &stats_on_exit) == 1);
  CHECK(am_option_set("AMMALLOC_STATS_ON_EXIT", 1) == EPERM);
  CHECK(am_option_set("AMMALLOC_STATS_ON_EXIT", 0) == EPERM);
  long long again = -1;
  REQUIRE(am_option_get("AMMALLOC_STATS_ON_EXIT", &again) == 1);
  CHECK(again == stats_on_exit);

  // A run-time option: the bounds are inclusive, and get reads back what set
  // stored.
  OptionGuard interval("AMMALLOC_SCAVENGE_INTERVAL_MS");
  CHECK(am_option_set("AMMALLOC_SCAVENGE_INTERVAL_MS", 9) == EINVAL);
  CHECK(am_option_set("AMMALLOC_SCAVENGE_INTERVAL_MS", -1) == EINVAL);
  CHECK(am_option_set("AMMALLOC_SCAVENGE_INTERVAL_MS", 10) == 0);
  CHECK(opt("AMMALLOC_SCAVENGE_INTERVAL_MS") == 10);
  CHECK(am_option_set("AMMALLOC_SCAVENGE_INTERVAL_MS", 3600 * 1000) == 0);
  CHECK(am_option_set("AMMALLOC_SCAVENGE_INTERVAL_MS", 3600 * 1000 + 1) == EINVAL);
  CHECK(opt("AMMALLOC_SCAVENGE_INTERVAL_MS") == 3600 * 1000);
  OptionGuard scavenger("AMMALLOC_SCAVENGER");
  CHECK(am_option_set("AMMALLOC_SCAVENGER", 2) == EINVAL);
  CHECK(am_option_set("AMMALLOC_SCAVENGER", 0) == 0);
  CHECK(opt("AMMALLOC_SCAVENGER") == 0);
  CHECK(am_option_set("AMMALLOC_SCAVENGER", 1) == 0);
  CHECK(opt("AMMALLOC_SCAVENGER") == 1);
  OptionGuard gc("AMMALLOC_GC_INTERVAL_MS");
  CHECK(am_option_set("AMMALLOC_GC_INTERVAL_MS", 0) == 0);  // 0 turns the GC off
  CHECK(am_option_set("AMMALLOC_GC_INTERVAL_MS", -5) == EINVAL);
}

// Background thread lifecycle and loop (see background.h).
#include "policy/background.h"

#include <pthread.h>
#include <signal.h>

#include "core/init_state.h"
#include "core/options.h"
#include "os/os.h"
#include "policy/scavenger.h"
#include "policy/thread_cache_gc.h"
#include "heap/thread_cache.h"
#include "heap/transfer_cache.h"

namespace am {

namespace {

enum : int { kNotStarted = 0, kRunning = 1, kFailed = 2 };
constinit std::atomic<int> g_state{kNotStarted};
constinit std::atomic<size_t> g_wakeups{0};
constinit std::atomic<size_t> g_released{0};

constexpr uint64_t kMs = 1000000;

// Inline mode: no thread (one application thread, AMMALLOC_BACKGROUND_THREAD=0,
// or pthread_create failed); the allocation slow paths run the rounds. The
// clock is read every kInlineCheckEvery pokes, a round runs when one is due,
// one thread at a time (g_inline_busy).
constexpr uint32_t kInlineCheckEvery = 16;
constinit std::atomic<uint32_t> g_inline_pokes{0};
constinit std::atomic<bool> g_inline_busy{false};
constinit uint64_t g_inline_next_ns = 0;  // guarded by g_inline_busy

struct Schedule {
  uint64_t next_scavenge = 0;
  uint64_t next_gc = 0;
};
constinit Schedule g_inline_schedule;  // guarded by g_inline_busy

// The options of one round (am_option_set may change them at run time).
struct Round {
  bool scavenge;
  uint64_t scavenge_every, delay, gc_every, tick;
  Round()
      : scavenge(option(kOptScavenger) != 0),
        scavenge_every(static_cast<uint64_t>(option(kOptScavengeIntervalMs)) * kMs),
        delay(static_cast<uint64_t>(option(kOptReleaseDelayMs)) * kMs),
        gc_every(static_cast<uint64_t>(option(kOptGcIntervalMs)) * kMs) {
    tick = scavenge ? scavenge_every : ~uint64_t{0};
    if (gc_every != 0 && gc_every < tick) tick = gc_every;
    if (tick == ~uint64_t{0}) tick = 1000 * kMs;  // both off: look again in a second
  }
};

// The work of one round, from the thread or a slow path. `gc`: the idle GC
// runs (not in a single-threaded process: its one cache is the caller's, which
// is not idle and trims itself).
void run_round(const Round& r, uint64_t now, Schedule* sch, bool gc) {
  g_wakeups.fetch_add(1, std::memory_order_relaxed);
  if (r.scavenge && now >= sch->next_scavenge) {
    g_released.fetch_add(scavenger_release(now > r.delay ? now - r.delay : 0), std::memory_order_relaxed);
    sch->next_scavenge = now + r.scavenge_every;
  }
  if (gc && r.gc_every != 0 && now >= sch->next_gc) {
    thread_cache_gc(now, r.gc_every, false);
    sch->next_gc = now + r.gc_every;
  }
  transfer_cache_decay(now);  // idle batches back to the central cache (at most 1/s)
}

void* loop(void*) {
  Schedule sch;
  for (;;) {
    Round r;
    os::sleep_ns(r.tick);
    run_round(r, os::now_ns(), &sch, true);
    // A process ends when its last thread does (main() called pthread_exit, or
    // the forking thread of a child returned): this helper must not be the
    // thread that keeps it alive. Returning makes glibc's start_thread see the
    // last thread end and call exit(0), as it would have without us.
    if (os::only_live_thread()) break;
  }
  g_bg_inline.store(true, std::memory_order_relaxed);  // the slow paths take over
  g_state.store(kNotStarted, std::memory_order_release);
  return nullptr;
}

// The program's thread count is read from /proc at most every 10 ms (a
// report can come with every large free). Unreadable (no /proc in a
// sandbox): no thread.
constinit std::atomic<uint64_t> g_thread_check_ns{0};
constexpr uint64_t kThreadCheckNs = 10 * kMs;
bool thread_wanted(uint64_t now) {
  if (option(kOptBackgroundThread) == 0) return false;
  uint64_t last = g_thread_check_ns.load(std::memory_order_relaxed);
  if (last != 0 && now - last < kThreadCheckNs) return false;
  g_thread_check_ns.store(now, std::memory_order_relaxed);
  return os::status_field("Threads") >= 2;
}

void start_thread() {
  int expected = kNotStarted;
  if (!g_state.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) return;
  thread_cache_gc_init();
  // The new thread inherits the signal mask: block everything for it, then
  // restore ours.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t t;
  bool ok = pthread_create(&t, nullptr, loop, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (ok) {
    pthread_detach(t);
    g_bg_inline.store(false, std::memory_order_relaxed);
  } else {
    g_state.store(kFailed, std::memory_order_release);  // do not retry on every miss; inline instead
    g_bg_inline.store(true, std::memory_order_relaxed);
  }
}

// A round from a slow path, if one is due.
void inline_tick() {
  uint32_t n = g_inline_pokes.load(std::memory_order_relaxed) + 1;
  g_inline_pokes.store(n, std::memory_order_relaxed);  // racy count: a lost one is harmless
  if (n % kInlineCheckEvery != 0) return;
  if (g_inline_busy.exchange(true, std::memory_order_acquire)) return;
  const uint64_t now = os::now_ns();
  if (now >= g_inline_next_ns) {
    Round r;
    g_inline_next_ns = now + r.tick;
    run_round(r, now, &g_inline_schedule, thread_cache_count() >= 2);
    // A second thread may have come since the last report.
    if (g_state.load(std::memory_order_relaxed) == kNotStarted && thread_wanted(now)) start_thread();
  }
  g_inline_busy.store(false, std::memory_order_release);
}

// Whether to run a thread now: the option allows it and the program has a
// second thread (checked on a report, e.g. a second thread cache going live,
// and at each inline round). Never while the process has one thread: it would
// break unshare(CLONE_NEWUSER) and whatever checks that it is single-threaded.
}  // namespace

constinit std::atomic<bool> g_bg_inline{false};

void background_start_slow() {
  if (!fully_initialized()) return;
  if (background_work_reported()) {
    clear_background_work();  // one decision per report
    if (option(kOptScavenger) == 0 && option(kOptGcIntervalMs) == 0) return;
    const int state = g_state.load(std::memory_order_acquire);
    if (state == kRunning) return;
    if (state == kNotStarted && thread_wanted(os::now_ns())) {
      start_thread();
      if (g_state.load(std::memory_order_relaxed) == kRunning) return;
    }
    g_bg_inline.store(true, std::memory_order_relaxed);
  }
  if (g_bg_inline.load(std::memory_order_relaxed)) inline_tick();
}

BackgroundCounters background_counters() {
  return {g_wakeups.load(std::memory_order_relaxed), g_released.load(std::memory_order_relaxed),
          g_state.load(std::memory_order_relaxed) == kRunning};
}

void background_reset_counters() {
  g_wakeups.store(0, std::memory_order_relaxed);
  g_released.store(0, std::memory_order_relaxed);
}

void background_after_fork_child() {
  // The child has one thread: the slow paths do the work until it has a
  // second one (the report of a second cache starts the thread again).
  g_inline_busy.store(false, std::memory_order_relaxed);
  g_inline_next_ns = 0;
  g_inline_schedule = Schedule{};
  if (g_state.load(std::memory_order_relaxed) == kRunning) {
    g_state.store(kNotStarted, std::memory_order_relaxed);
    g_bg_inline.store(true, std::memory_order_relaxed);
    report_background_work();
  }
}

}  // namespace am

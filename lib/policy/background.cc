// Background thread lifecycle and loop (see background.h).
#include "policy/background.h"

#include <pthread.h>
#include <signal.h>

#include "core/init_state.h"
#include "core/options.h"
#include "os/os.h"
#include "policy/scavenger.h"
#include "policy/thread_cache_gc.h"
#include "heap/transfer_cache.h"

namespace am {

namespace {

enum : int { kNotStarted = 0, kRunning = 1, kFailed = 2 };
constinit std::atomic<int> g_state{kNotStarted};
constinit std::atomic<size_t> g_wakeups{0};
constinit std::atomic<size_t> g_released{0};

constexpr uint64_t kMs = 1000000;

void* loop(void*) {
  uint64_t next_scavenge = 0, next_gc = 0;
  for (;;) {
    // Options may change at run time (am_option_set): read them every round.
    bool scavenge = option(kOptScavenger) != 0;
    uint64_t scavenge_every = static_cast<uint64_t>(option(kOptScavengeIntervalMs)) * kMs;
    uint64_t delay = static_cast<uint64_t>(option(kOptReleaseDelayMs)) * kMs;
    uint64_t gc_every = static_cast<uint64_t>(option(kOptGcIntervalMs)) * kMs;
    uint64_t tick = scavenge ? scavenge_every : ~uint64_t{0};
    if (gc_every != 0 && gc_every < tick) tick = gc_every;
    if (tick == ~uint64_t{0}) tick = 1000 * kMs;  // both off: look again in a second
    os::sleep_ns(tick);
    g_wakeups.fetch_add(1, std::memory_order_relaxed);
    uint64_t now = os::now_ns();
    if (scavenge && now >= next_scavenge) {
      g_released.fetch_add(scavenger_release(now > delay ? now - delay : 0), std::memory_order_relaxed);
      next_scavenge = now + scavenge_every;
    }
    if (gc_every != 0 && now >= next_gc) {
      thread_cache_gc(now, gc_every, false);
      next_gc = now + gc_every;
    }
    transfer_cache_decay(now);  // idle batches back to the central cache (at most 1/s)
    // A process ends when its last thread does (main() called pthread_exit, or
    // the forking thread of a child returned): this helper must not be the
    // thread that keeps it alive. Returning makes glibc's start_thread see the
    // last thread end and call exit(0), as it would have without us.
    if (os::only_live_thread()) break;
  }
  g_state.store(kNotStarted, std::memory_order_release);
  return nullptr;
}

}  // namespace

void background_start_slow() {
  if (!fully_initialized()) return;
  clear_background_work();  // one poke per report
  int expected = kNotStarted;
  if (!g_state.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) return;
  if (option(kOptScavenger) == 0 && option(kOptGcIntervalMs) == 0) {
    g_state.store(kNotStarted, std::memory_order_release);
    return;
  }
  thread_cache_gc_init();
  // The new thread inherits the signal mask: block everything for it, then
  // restore ours.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t t;
  bool ok = pthread_create(&t, nullptr, loop, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (ok)
    pthread_detach(t);
  else
    g_state.store(kFailed, std::memory_order_release);  // do not retry on every free
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
  if (g_state.load(std::memory_order_relaxed) == kRunning) {
    g_state.store(kNotStarted, std::memory_order_relaxed);
    report_background_work();  // starts again the lazy way
  }
}

}  // namespace am

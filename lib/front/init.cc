// The one init sequence (the order is documented in init.h).
#include "front/init.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/spinlock.h"
#include "front/fork.h"
#include "observe/banner.h"
#include "observe/heap_checker.h"
#include "front/harden.h"
#include "core/options.h"
#include "observe/profiler.h"
#include "observe/stats.h"
#include "observe/stats_signal.h"
#include "heap/thread_cache.h"

namespace am {

constinit std::atomic<int> g_init_state{static_cast<int>(InitState::kNotStarted)};

namespace {

constinit SpinLock g_init_lock{LockRank::kInit};
constinit std::atomic<bool> g_phase2_claimed{false};

void print_stats_at_exit() { stats_print(2); }

void phase1() {
  options_load();  // also hands the budgets and the memory limit to their modules
  harden_init();   // before the first object exists
}

void phase2() {
  pthread_key_t key;
  if (pthread_key_create(&key, thread_cache_on_thread_exit) == 0) thread_cache_set_key(key);
  fork_install_handlers();
  // Observability. The heap checker first: it must see the
  // program's first allocation, and its atexit check must run after every
  // other exit handler (the profile dump and the stats below run before it).
  heap_checker_init();
  profiler_init();
  signals_init();
  if (option(kOptStatsOnExit)) atexit(print_stats_at_exit);
  banner_init();  // AMMALLOC_VERBOSE banner, AMMALLOC_STARTED_FILE marker (observe/banner.h)
}

}  // namespace

void init_slow() {
  if (g_init_state.load(std::memory_order_acquire) == static_cast<int>(InitState::kNotStarted)) {
    LockGuard g(g_init_lock);
    if (g_init_state.load(std::memory_order_relaxed) == static_cast<int>(InitState::kNotStarted)) {
      phase1();
      g_init_state.store(static_cast<int>(InitState::kCoreReady), std::memory_order_release);
    }
  }
  // Exactly one thread runs phase 2; others (and re-entrant calls from inside
  // it) proceed with the central tiers until it is done.
  if (!g_phase2_claimed.exchange(true, std::memory_order_acq_rel)) {
    phase2();
    g_init_state.store(static_cast<int>(InitState::kReady), std::memory_order_release);
  }
}

void init_lock_for_fork() { g_init_lock.lock_unchecked(); }
void init_unlock_after_fork(bool child) { g_init_lock.unlock_after_fork(child); }

}  // namespace am

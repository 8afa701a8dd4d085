// Background work: the page-heap scavenger, the thread-cache GC and the
// transfer-cache decay, run by a background thread or by the slow paths.
//
// Never a thread while the process has one thread of its own (unshare(
// CLONE_NEWUSER) fails with EINVAL in a multi-threaded process; sandboxes,
// zygotes and programs that check they are single-threaded break; and
// pthread_create would run in whatever context called malloc). Until a
// second thread has allocated (its thread cache went live), and always with
// AMMALLOC_BACKGROUND_THREAD=0, the allocation slow paths run the rounds
// (inline mode): every 16th poke reads the clock and runs a round when one is
// due, one thread at a time; a round is what the thread does on waking.
// A single-threaded program that never allocates again keeps its free pages
// until malloc_trim/am_release_free_memory or its next allocations (README).
//
// Owns: the thread's lifecycle. It starts lazily, the first time there is work
// for it, which the tiers report through heap/work_report.h (1 MiB of free
// resident pages or 32 MiB mapped in the page heap, or a second thread
// cache) and this layer decides on, from an allocation slow path that holds no lock (never from free:
// pthread_create allocates, and reusing a block the program just freed would
// hide a double free of it), with every signal blocked (so
// it never runs the application's handlers), detached (it never keeps the
// process from exiting: exit() ends it wherever it sleeps). In a forked child
// it does not exist: the child is in inline mode until it has a second thread.
// What to release and what to reclaim is decided by the scavenger
// (policy/scavenger.h) and the GC (policy/thread_cache_gc.h); this file only
// decides when they run: every round reads the options (AMMALLOC_SCAVENGER,
// _SCAVENGE_INTERVAL_MS, _RELEASE_DELAY_MS, _GC_INTERVAL_MS), so am_option_set
// takes effect at the next round.
// Locks: none of its own (atomics); the passes take the tiers' locks.
#pragma once

#include <atomic>
#include <cstddef>

#include "base/attributes.h"
#include "heap/work_report.h"

namespace am {

AM_NOINLINE void background_start_slow();
// True while no background thread runs and the slow paths do its work
// (inline mode: one application thread, AMMALLOC_BACKGROUND_THREAD=0, or no
// thread could be created).
extern constinit std::atomic<bool> g_bg_inline;
// Called from allocation slow paths with no lock held: two relaxed loads (the
// tiers' report, inline mode); the decisions are background_start_slow's.
AM_ALWAYS_INLINE void background_poke() {
  if (AM_UNLIKELY(background_work_reported() || g_bg_inline.load(std::memory_order_relaxed)))
    background_start_slow();
}
// Marks that the thread has work (called from anywhere, locks or not).
inline void background_want() { report_background_work(); }

struct BackgroundCounters {
  size_t wakeups = 0;
  size_t scavenger_bytes_released = 0;
  bool running = false;
};
BackgroundCounters background_counters();
void background_reset_counters();
void background_after_fork_child();

}  // namespace am

// Background thread: runs the page-heap scavenger and the thread-cache GC.
//
// Owns: the thread's lifecycle. It starts lazily, the first time there is work
// for it (1 MiB of free resident pages in the page heap, or a second thread
// cache), from an allocation slow path that holds no lock (never from free:
// pthread_create allocates, and reusing a block the program just freed would
// hide a double free of it), with every signal blocked (so
// it never runs the application's handlers), detached (it never keeps the
// process from exiting: exit() ends it wherever it sleeps). In a forked child
// it does not exist, and starts again the same lazy way.
// Policy lives elsewhere: what to release (page_heap_release) and what to
// reclaim (thread_cache_gc).
#pragma once

#include <atomic>
#include <cstddef>

#include "base/attributes.h"

namespace am {

extern constinit std::atomic<bool> g_background_wanted;

AM_NOINLINE void background_start_slow();
// Called from slow paths with no lock held.
AM_ALWAYS_INLINE void background_poke() {
  if (AM_UNLIKELY(g_background_wanted.load(std::memory_order_relaxed))) background_start_slow();
}
// Marks that the thread has work (called from anywhere, locks or not).
inline void background_want() { g_background_wanted.store(true, std::memory_order_relaxed); }

struct BackgroundCounters {
  size_t wakeups = 0;
  size_t scavenger_bytes_released = 0;
  bool running = false;
};
BackgroundCounters background_counters();
void background_reset_counters();
void background_after_fork_child();

}  // namespace am

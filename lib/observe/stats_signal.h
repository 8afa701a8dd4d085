// Signal options: AMMALLOC_STATS_SIGNAL (print the statistics report) and
// AMMALLOC_HEAP_PROFILE_SIGNAL (write a heap profile); and, while the heap
// profiler runs, a profile on SIGTERM/SIGINT before their default action when
// the program had no handler of its own.
//
// Owns: the two handlers and the work they leave for later. A handler must not
// take a lock the thread it interrupted holds (that thread cannot release it
// until the handler returns). So it acts at once only when the interrupted
// thread holds no allocator lock (t_locks_held == 0, base/spinlock.h) and is
// not inside a thread-cache fast-path operation (odd seq: a forced GC pass
// holding the registry lock may be waiting for it to end); it then takes locks
// normally (their holders are other threads, which make progress) and writes
// with write(2) only: no malloc, no stdio. Otherwise it writes a one-line note,
// sets a pending bit, and the next miss path of any thread (no lock held
// there) does the work.
// Locks: none of its own.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/attributes.h"

namespace am {

inline constexpr uint32_t kPendingStats = 1, kPendingProfile = 2;
extern constinit std::atomic<uint32_t> g_signal_pending;

// Init phase 2: installs the handlers the options ask for.
void signals_init();
AM_NOINLINE void signals_service();
AM_ALWAYS_INLINE void signals_poll() {
  if (AM_UNLIKELY(g_signal_pending.load(std::memory_order_relaxed) != 0)) signals_service();
}

}  // namespace am

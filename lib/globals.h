// Global initialisation: one constinit state and one init sequence.
//
// Every global in ammalloc is constant-initialised (constinit), so the allocator
// works from the very first call (even from the dynamic loader or libc's own
// start-up) without static constructors. What still needs doing at run time is
// done by init_once(), lazily, on the first slow-path allocation, from any
// thread, in this order:
//   phase 1 (under the init lock; must not call anything that may allocate):
//     1. options: read AMMALLOC_* once (options.cc)
//     2. thread-cache budgets from the options
//     -> state kCoreReady: the central tiers work; threads allocate through them
//   phase 2 (the same thread, outside every lock; may re-enter malloc, which
//   then finds phase 1 done and is served by the central tiers):
//     3. pthread_key_create for the thread-exit flush
//     4. pthread_atfork handlers (fork.cc)
//     5. observability: heap checker (bypass mode, exit check), heap profiler
//        (fork handlers, start from AMMALLOC_HEAP_PROFILE, exit dump), the
//        signal handlers (AMMALLOC_STATS_SIGNAL, AMMALLOC_HEAP_PROFILE_SIGNAL)
//     6. atexit hooks (stats at exit)
//     -> state kReady: threads get thread caches
// Background threads (later issues) start after kReady, outside every lock.
#pragma once

#include <atomic>

#include "base/attributes.h"

namespace am {

enum class InitState : int { kNotStarted = 0, kCoreReady = 1, kReady = 2 };

extern constinit std::atomic<int> g_init_state;

void init_slow();

AM_ALWAYS_INLINE void ensure_initialized() {
  if (AM_UNLIKELY(g_init_state.load(std::memory_order_acquire) < static_cast<int>(InitState::kReady)))
    init_slow();
}
inline bool fully_initialized() {
  return g_init_state.load(std::memory_order_acquire) == static_cast<int>(InitState::kReady);
}

}  // namespace am

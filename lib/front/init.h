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
// The background thread starts after kReady, outside every lock (policy/background.h).
#pragma once

#include "core/init_state.h"

namespace am {
// fork module (front/fork.cc): the init lock in rank order.
void init_lock_for_fork();
void init_unlock_after_fork(bool child);
}  // namespace am

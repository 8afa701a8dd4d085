// The front end's one door into observation: what an observed allocation,
// free or in-place realloc calls, behind the one observed() test the slow
// paths already make.
//
// Owns: g_observed (how many observers are on: 1 while any hook set is
// installed, +1 per internal observer such as the heap checker) and the five
// calls below. They dispatch to every observer in the hook table (hooks.h,
// which defines them): the program's hooks and ammalloc's own internal
// observers. Nothing here knows which observers exist.
//
// How calls get here without a test on the fast path: while anything observes,
// every thread is in thread-cache bypass mode (thread_cache_set_bypass), so
// every malloc and free reaches a miss path in front/, which calls
// observe_*_begin before the real work and observe_*_end after it when
// observed() is true. Sizes as ammalloc.h documents: the requested size for
// allocations, the usable size for frees; realloc's exact sequence too.
//
// Every function that calls these must be in the entry section
// (AM_ENTRY_SECTION), as these are, so that stacks captured by an observer
// start at the program's frame (stacktrace.h).
// Locks: none (hooks.h explains the table's lock-free protocol).
#pragma once

#include <atomic>
#include <cstddef>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"

namespace am {

extern constinit std::atomic<int> g_observed;
AM_ALWAYS_INLINE bool observed() { return g_observed.load(std::memory_order_relaxed) != 0; }

// One before and one after an allocation of `size` requested bytes (p is NULL
// when it failed).
void observe_alloc_begin(size_t size, am_api api);
void observe_alloc_end(void* p, size_t size, am_api api);
// One before and one after the free of p (usable: its usable size).
void observe_free_begin(void* p, size_t usable, am_api api);
void observe_free_end(void* p, size_t usable, am_api api);
// realloc that kept its block: a free of p, then an alloc of p (AM_API_REALLOC).
void observe_realloc_in_place(void* p, size_t old_usable, size_t size);

}  // namespace am

// Observers of every allocation and free: the malloc hooks (am_hook_add) and
// the heap checker (heap_checker.h).
//
// Owns: the hook table (AM_HOOK_MAX slots, each a copy of the caller's
// am_hooks), the dispatch the slow paths call, the per-thread guard that keeps
// allocations made inside a hook from calling hooks, and `g_observed`, the one
// value the slow paths test.
//
// How calls get here without a test on the fast path: while anything observes
// (first hook added, heap checker on) every thread is in thread-cache bypass
// mode (thread_cache_set_bypass), so every malloc and free reaches a miss path
// (alloc_small_miss, free_small_miss, alloc_large, free_slow in alloc_slow.cc),
// which calls observe_* when observed() is true. What each API reports, and
// realloc's exact sequence, is documented in ammalloc.h.
//
// Locks: none. A slot is claimed with a CAS, filled, then published; removal
// unpublishes it and waits until no dispatch is in flight (a Dekker handshake
// on g_in_flight, seq_cst on both sides), so a removed set's callbacks have
// returned when am_hook_remove returns. The in-flight count is one shared
// atomic: hooks are an instrumentation mode, and bypass mode is slow anyway.
#pragma once

#include <atomic>
#include <cstddef>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"

namespace am {

// Hooks installed (counts 1) + heap checker on (counts 1).
extern constinit std::atomic<int> g_observed;
AM_ALWAYS_INLINE bool observed() { return g_observed.load(std::memory_order_relaxed) != 0; }

// Called by the slow paths when observed(). Sizes as ammalloc.h documents:
// requested size for allocations, usable size for frees.
void observe_pre_alloc(size_t size, am_api api);
void observe_post_alloc(void* p, size_t size, am_api api);
void observe_pre_free(void* p, size_t usable, am_api api);
void observe_post_free(void* p, size_t usable, am_api api);
// realloc that kept its block: a free of p, then an alloc of p.
void observe_realloc_in_place(void* p, size_t old_usable, size_t size);

// The heap checker records every allocation from now on (bypass mode on; never
// turned off: its table must see every free of what it recorded).
void observers_enable_heap_check();
bool observers_heap_check_on();

// True while the calling thread runs a hook (tests, and the profiler's guard).
bool hooks_in_callback();

}  // namespace am

// Work report: how the tiers tell the policy layer that background work may
// be waiting, without calling up into it.
//
// Owns: one relaxed flag. A tier sets it when it reaches a state in which the
// background thread (policy/background.cc) can have work:
//  - the page heap holds >= 1 MiB of free resident pages (a scavenger may
//    return them), or has mapped 32 MiB (page_heap.cc);
//  - a second thread cache goes live (the GC may find idle caches;
//    thread_cache.cc).
// The tiers only report. policy/background.h's background_poke(), on the
// allocation slow paths, reads the flag (one relaxed load) and the policy
// decides whether to start the thread (options, process state) and clears it.
// Invariants: setting it is a plain relaxed store, safe under any lock and
// from any thread; it is constant-initialised (false).
// Locks: none.
#pragma once

#include <atomic>

namespace am {

inline constinit std::atomic<bool> g_work_reported{false};

// A tier has reached a state in which background work may pay.
inline void report_background_work() { g_work_reported.store(true, std::memory_order_relaxed); }
inline bool background_work_reported() { return g_work_reported.load(std::memory_order_relaxed); }
// The policy has seen the report (background_start_slow).
inline void clear_background_work() { g_work_reported.store(false, std::memory_order_relaxed); }

}  // namespace am

// Thread-cache revoke: the mechanism that takes a thread cache away from its
// owner (any thread, at any time) without a lock or an atomic read-modify-
// write on the owner's fast path. Used by the idle GC (policy/thread_cache_gc.cc
// decides which caches are idle) and by bypass mode (thread_cache_set_bypass).
//
// The problem. A thread that filled its cache and then blocks forever (a worker
// waiting on a condition variable) never reaches a slow path again, so it can
// never be asked to flush. Its lists must be emptied by another thread while
// the owner may, at any instant, wake up and pop or push on them with plain
// loads and stores.
//
// The protocol. Owner, every fast-path operation (thread_cache.h):
//   O1  seq += 1              (odd: operation in progress; plain store)
//   O2  L = active            (plain load)
//   O3  pop/push on L[cl]     (plain loads and stores)
//   O4  seq += 1              (even again; plain store, after O3 in program order)
// The owner's slow path holds the cache's gc_lock, and if it finds active
// pointing at g_empty_lists it points it back at its own lists.
// GC, for one cache, holding its gc_lock (so the owner is not in its slow path):
//   G1  active = g_empty_lists  (shared: no objects, no room; thread_cache.h)
//   G2  membarrier()          (every running thread of the process executes a
//                              full barrier; a thread not running has been
//                              through a context switch, itself a full barrier)
//   G3  s = seq; if s is odd, restore active and give up for this round
//   G4  take every object of `lists`, give the budget back.
//
// Why it is race-free. Consider the owner's operation that is closest to G3.
//  - If its O1 was ordered before G2's barrier, G3 sees the odd seq (or, if O4
//    also happened, the operation's stores, which precede O4 in program order
//    on a TSO machine, or by O4's release store elsewhere (tc_end), and are
//    published by the same barrier, are complete).
//    An odd seq makes the GC back off; it touches nothing.
//  - If its O1 was ordered after G2's barrier, then O2 is too, and O2 reads
//    the value G1 stored before G2: g_empty_lists. Both fast paths treat it as
//    "empty and full" and go to the slow path without writing anything; the
//    slow path waits for gc_lock, which the GC holds until G4 is complete.
// So at G4 no operation is in flight on `lists` and none can start on them
// until the GC releases gc_lock. The cost to the owner is two single-
// instruction stores and a load of `active` per operation; the GC pays one
// membarrier per reclaimed cache.
//
// Under ThreadSanitizer, which cannot see membarrier, O1/O2/O4 become seq_cst
// atomics: a symmetric Dekker handshake with the same argument.
// Owns: whether membarrier(2) is usable (registered once; without it no cache
// is ever revoked and only owners flush their caches).
// Locks: the caller holds the cache's gc_lock (LockRank::kThreadCache) for
// thread_cache_revoke; thread_cache_revoke_all takes the registry lock
// (kRegistry) and then each cache's gc_lock in turn.
#pragma once

#include <cstddef>

#include "heap/thread_cache.h"

namespace am {

// How long G3 waits for an operation in flight. kForever: as long as it takes
// (one always ends; am_reset, bypass mode). kBriefly: kRevokeWaitTries yields
// (it ends in nanoseconds unless the owner was preempted), then the cache is
// restored and left for next time (the idle GC).
enum class RevokeWait : uint8_t { kForever, kBriefly };
inline constexpr int kRevokeWaitTries = 64;

struct RevokeResult {
  bool revoked = false;  // active == g_empty_lists now, and no operation in flight
  bool flushed = false;  // its lists held room, and went to the central tier (G4)
  size_t bytes = 0;      // cached bytes flushed
};

// Registers for membarrier (once; again after a failure). False if the
// kernel has none.
bool thread_cache_revoke_init();
// Whether revoking is possible (registers on the first call).
bool thread_cache_revoke_available();
// Fork child (thread_cache.cc's repair): registers again at the next use.
void thread_cache_revoke_after_fork_child();

// G1-G4 on one cache, with tc->gc_lock held by the caller. A cache revoked
// already (bypass mode, an earlier pass) counts as revoked at once. If G3
// gives up (kBriefly), active is restored and nothing is taken. A revoked
// cache whose lists have room is flushed to the central tier; `active` stays
// at g_empty_lists, and the owner takes its lists back at its next slow path
// (unless bypass mode is on).
RevokeResult thread_cache_revoke(ThreadCache* tc, RevokeWait wait);

// Revokes (and flushes) every registered cache: when it returns, every
// fast-path operation of every thread that starts from then on reaches the
// slow path until its owner resumes. An owner still inside one operation after
// the brief wait keeps its cache unflushed (bounded: a stopped thread cannot
// hang the caller). Returns the bytes flushed; 0 without membarrier (nothing
// revoked).
size_t thread_cache_revoke_all();

}  // namespace am

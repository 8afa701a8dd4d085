// Thread-cache GC: the policy that decides which thread caches are idle and
// takes them back through the revoke mechanism (heap/thread_cache_revoke.h,
// where the protocol and the argument for why it is race-free live).
//
// The problem it solves: a thread that filled its cache and then blocks
// forever (a worker waiting on a condition variable) never reaches a slow
// path again, so it can never be asked to flush; another thread must empty
// its lists.
//
// Idleness. The GC remembers `seq` at each visit and the time it last changed;
// a cache whose seq has not moved for idle_ns is reclaimed. A thread that
// wakes up afterwards refills through its slow path as usual.
//
// An idle pass takes a cache's gc_lock only if it is free (an owner in its
// slow path is not idle) and revokes with RevokeWait::kBriefly: an operation
// in flight after 64 tries leaves the cache for the next pass. A forced pass
// (am_reset) takes every gc_lock and waits as long as it takes.
// Locks: the walk lock (kRegistryWalk) for the pass; the registry lock
// (kRegistry) only to step to the next cache, then that cache's gc_lock
// (kThreadCache) alone while it is visited: threads start and exit during a
// pass, also while a forced pass waits on a stopped thread.
#include "policy/thread_cache_gc.h"

#include <atomic>

#include "heap/thread_cache.h"
#include "heap/thread_cache_registry.h"
#include "heap/thread_cache_revoke.h"

namespace am {
namespace {

constinit std::atomic<size_t> g_runs{0};
constinit std::atomic<size_t> g_caches{0};
constinit std::atomic<size_t> g_bytes{0};

struct Pass {
  uint64_t now_ns;
  uint64_t idle_ns;
  bool force;
  size_t bytes;
};

// With tc's gc_lock held (registry_visit_each takes it).
void visit(ThreadCache* tc, void* arg) {
  Pass& pass = *static_cast<Pass*>(arg);
  uint32_t seq = __atomic_load_n(&tc->seq, __ATOMIC_SEQ_CST);
  bool idle = seq == tc->gc_seen_seq && pass.now_ns - tc->gc_seen_ns >= pass.idle_ns;
  if (seq != tc->gc_seen_seq) {
    tc->gc_seen_seq = seq;
    tc->gc_seen_ns = pass.now_ns;
  }
  // A forced pass revokes every cache, empty or not.
  if (pass.force || (idle && tc->capacity_bytes != 0)) {
    RevokeResult r = thread_cache_revoke(tc, pass.force ? RevokeWait::kForever : RevokeWait::kBriefly);
    pass.bytes += r.bytes;
    if (r.flushed) g_caches.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

bool thread_cache_gc_init() { return thread_cache_revoke_init(); }

size_t thread_cache_gc(uint64_t now_ns, uint64_t idle_ns, bool force) {
  if (!thread_cache_revoke_available()) return 0;
  Pass pass{now_ns, idle_ns, force, 0};
  // A forced pass (am_reset) must reach every cache and waits for each
  // gc_lock; an idle pass skips an owner that is in its slow path (it is not
  // idle).
  registry_visit_each(visit, &pass, /*wait=*/force);
  g_runs.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(pass.bytes, std::memory_order_relaxed);
  return pass.bytes;
}

GcCounters thread_cache_gc_counters() {
  return {g_runs.load(std::memory_order_relaxed), g_caches.load(std::memory_order_relaxed),
          g_bytes.load(std::memory_order_relaxed)};
}

void thread_cache_gc_reset_counters() {
  g_runs.store(0, std::memory_order_relaxed);
  g_caches.store(0, std::memory_order_relaxed);
  g_bytes.store(0, std::memory_order_relaxed);
}

}  // namespace am

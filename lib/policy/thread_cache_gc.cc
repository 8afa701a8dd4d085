// Thread-cache GC: reclaiming the caches of idle threads without touching the
// owners' fast path with a lock or an atomic read-modify-write.
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
//    on a TSO machine and are published by the same barrier, are complete).
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
// Idleness. The GC remembers `seq` at each visit and the time it last changed;
// a cache whose seq has not moved for idle_ns is reclaimed. A thread that
// wakes up afterwards refills through its slow path as usual.
//
// Under ThreadSanitizer, which cannot see membarrier, O1/O2/O4 become seq_cst
// atomics: a symmetric Dekker handshake with the same argument.
#include "policy/thread_cache_gc.h"

#include <atomic>

#include "os/os.h"
#include "heap/thread_cache.h"
#include "heap/thread_cache_registry.h"

namespace am {
namespace {

constinit bool g_have_membarrier = false;
constinit std::atomic<size_t> g_runs{0};
constinit std::atomic<size_t> g_caches{0};
constinit std::atomic<size_t> g_bytes{0};

// G3 may meet an operation in flight; it finishes in nanoseconds unless the
// owner was preempted, so wait a little, then leave the cache for next time.
constexpr int kSeqWaitTries = 64;

struct Pass {
  uint64_t now_ns;
  uint64_t idle_ns;
  bool force;
  size_t bytes;
};

// A forced pass waits as long as it takes (an operation in flight always ends).
bool owner_outside_fast_path(ThreadCache* tc, bool force) {
  for (int i = 0; force || i < kSeqWaitTries; ++i) {
    if ((__atomic_load_n(&tc->seq, __ATOMIC_SEQ_CST) & 1) == 0) return true;
    os::yield_cpu();
  }
  return false;
}

void visit(ThreadCache* tc, void* arg) {
  Pass& pass = *static_cast<Pass*>(arg);
  // A forced pass (am_reset, bypass mode) must reach every cache; an idle pass
  // skips an owner that is in its slow path (it is not idle).
  if (pass.force)
    tc->gc_lock.lock();
  else if (!tc->gc_lock.try_lock())
    return;
  uint32_t seq = __atomic_load_n(&tc->seq, __ATOMIC_SEQ_CST);
  bool idle = seq == tc->gc_seen_seq && pass.now_ns - tc->gc_seen_ns >= pass.idle_ns;
  if (seq != tc->gc_seen_seq) {
    tc->gc_seen_seq = seq;
    tc->gc_seen_ns = pass.now_ns;
  }
  FreeList* own = &tc->lists[0];
  if ((idle || pass.force) && tc->capacity_bytes != 0) {
    bool taken = false;
    if (tc->active != own) {
      // Already revoked (bypass mode, or an earlier pass): the fast path cannot
      // reach the lists, and the owner's slow path is excluded by gc_lock.
      taken = true;
    } else {
      __atomic_store_n(&tc->active, &g_empty_lists[0], __ATOMIC_SEQ_CST);  // G1
      os::membarrier();                                                                      // G2
      taken = owner_outside_fast_path(tc, pass.force);                                       // G3
      if (!taken) __atomic_store_n(&tc->active, own, __ATOMIC_SEQ_CST);
    }
    if (taken) {
      size_t bytes = tc->cached_bytes();
      tc->flush_all();  // G4
      pass.bytes += bytes;
      g_caches.fetch_add(1, std::memory_order_relaxed);
    }
  } else if (pass.force && tc->active == own) {
    // Nothing cached, but a forced pass still revokes (bypass mode relies on it).
    __atomic_store_n(&tc->active, &g_empty_lists[0], __ATOMIC_SEQ_CST);
    os::membarrier();
    owner_outside_fast_path(tc, true);
  }
  tc->gc_lock.unlock();
}

}  // namespace

bool thread_cache_gc_init() {
  g_have_membarrier = os::membarrier_init();
  return g_have_membarrier;
}

size_t thread_cache_gc(uint64_t now_ns, uint64_t idle_ns, bool force) {
  if (!g_have_membarrier && !thread_cache_gc_init()) return 0;
  Pass pass{now_ns, idle_ns, force, 0};
  registry_for_each(visit, &pass);
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

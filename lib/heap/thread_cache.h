// ThreadCache: per-thread, per-size-class free lists; the tier the fast path uses.
//
// Owns: the thread-local cache (initial-exec, or TLS descriptors in the build for
// libammalloc_core: base/attributes.h; constinit, trivially destructible:
// an all-zero cache is a valid empty one whose every operation falls to the slow
// path), its growth policy, and the per-thread and total caps.
//
// Fast path (alloc_fast.h): pop from lists[cl] if non-empty; push onto lists[cl]
// if length < max_length (kept as slack = length - max_length). Nothing else: no lock, no atomic read-modify-write.
// Slow path (this file): refill a batch from the central tier, or flush a batch
// back, and adapt max_length:
//  - +1 per miss up to the class's batch size (slow start; skipped when the
//    transfer cache has an idle batch of the class to hand over);
//  - then +batch per miss up to kMaxListLength, but only for a list that has
//    overflowed too (its frees come back to this thread; a list that only
//    allocates gains nothing from room);
//  - a list that overflows more than kMaxOverages times in a row shrinks by
//    one batch;
//  - every 100 ms or so (checked in the slow path) the lists that saw no
//    slow-path event are trimmed: half their objects go back, their room
//    shrinks, spare budget returns to the process.
// Growth draws on the thread's byte budget (AMMALLOC_THREAD_CACHE_MAX), claimed
// in 64 KiB chunks from the process-wide budget (AMMALLOC_THREAD_CACHE_TOTAL);
// when the budget is exhausted the thread steals capacity from its other lists,
// round-robin, room above one batch first. Full batches move through the
// transfer cache; a flush (thread exit, GC, am_thread_cache_flush) goes to the
// central cache.
//
// Reclaim by the GC (thread_cache_gc.cc): the fast path reaches the lists through
// `active`, which starts at g_empty_lists (shared: no objects, no room)
// and points at the thread's own `lists` once active; each fast-path operation
// is bracketed by two increments of `seq` (odd = inside an operation). The GC
// takes an idle thread's objects by pointing `active` back at g_empty_lists,
// issuing membarrier(2), and proceeding only if `seq` is even. The owner's slow
// path and the GC exclude each other with `gc_lock`.
//
// Lifecycle: kUninit (all zero) -> kActive (registered, after global init) ->
// kDead (flushed by the pthread key destructor at thread exit). A dead or
// not-yet-active thread allocates and frees one object at a time through the
// central cache, so frees from later TLS destructors still work.
// Locks: none of its own; the registry lock (thread_cache_registry.h) guards
// the list of active caches.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/attributes.h"
#include "base/spinlock.h"
#include "core/size_class.h"
#include "heap/page_heap.h"

namespace am {

template <typename T>
AM_ALWAYS_INLINE void owner_store(T& field, T value);
template <typename T>
AM_ALWAYS_INLINE T shared_load(const T& field) {
  return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

struct FreeList {
  void* head;
  // length - max_length, <= 0: the list has room while it is negative. Kept as
  // the difference so that the free fast path tests for room and counts the
  // object with one `addl $1` + `jg` (3 instructions fewer than length and
  // max_length separately). Stats read it from other threads.
  int32_t slack;
  uint32_t max_length;  // the owner's slow path changes it through set_max

  uint32_t length() const {
    return static_cast<uint32_t>(shared_load(slack) + static_cast<int32_t>(shared_load(max_length)));
  }
  void set_length(uint32_t n) { owner_store(slack, static_cast<int32_t>(n) - static_cast<int32_t>(max_length)); }
  // New room, same objects.
  void set_max(uint32_t m) {
    uint32_t n = length();
    owner_store(max_length, m);
    set_length(n);
  }
};

// Where every thread's `active` points until it has a cache of its own, and
// after the GC took its objects: no objects, no room. The free fast path
// increments slack before it tests it, so these are written (by any thread in
// that state: racy increments from 0, each followed by a store of 0 on the
// miss); slack never goes below 0 here, so every increment sees >= 1 and
// misses. Nothing else is ever written to them.
extern FreeList g_empty_lists[kNumClasses];

struct ThreadCache {
  enum State : uint8_t { kUninit = 0, kActivating, kActive, kDead };

  // ---- hot: the only part the fast path touches ----------------------------
  FreeList* active = g_empty_lists;
  uint32_t seq = 0;  // odd while a fast-path operation is in progress
  // Heap-profiler countdown (sampler.h): bytes left before the next sample. The
  // malloc fast path subtracts each small request (`sub` + `js`); below zero it
  // calls the sampler. 0 (constinit) makes a thread's first allocation arm it;
  // with the profiler off it is re-armed to INT64_MAX. Owner-only.
  int64_t sample_left = 0;

  // ---- cold: slow path, GC, registry and stats -----------------------------
  SpinLock gc_lock{LockRank::kThreadCache};
  State state = kUninit;
  uint32_t next_victim = 0;
  size_t capacity_bytes = 0;  // sum over classes of max_length * size
  size_t claimed_bytes = 0;   // share of the process-wide budget held by this thread
  int tid = 0;
  ThreadCache* list_prev = nullptr;
  ThreadCache* list_next = nullptr;
  uint32_t gc_seen_seq = 0;  // GC: seq at its last visit, and when it last changed
  uint64_t gc_seen_ns = 0;
  FreeList lists[kNumClasses] = {};
  uint8_t overages[kNumClasses] = {};
  uint8_t flags[kNumClasses] = {};  // kRecycles, kTouched (thread_cache.cc)
  uint32_t slow_events = 0;         // refills + overflows since the last clock check
  uint64_t last_trim_ns = 0;

  void* refill(uint32_t cl, HeapStatus* status);
  void overflow(void* p, uint32_t cl);
  // Returns every cached object to the central tier and the budget; the cache
  // stays usable (max lengths restart from zero).
  void flush_all();
  size_t cached_bytes() const;

 private:
  bool try_grow(uint32_t cl, uint32_t objects);
  bool claim_budget(size_t bytes);
  void steal_capacity(uint32_t for_cl, size_t bytes);
  void shrink(uint32_t cl, uint32_t objects);
  void release(uint32_t cl, uint32_t n);
  void release_to_central(uint32_t cl, uint32_t n);
  void count_slow_event(uint32_t cl);
  void trim();
  void return_spare_budget();
};

extern constinit thread_local ThreadCache tls_cache AM_TLS_IE;

// A field only its owner thread writes but others read (list lengths, for stats
// and the GC): a plain store (a single `add`/`sub` on memory); under TSan a
// relaxed atomic store, so the reads elsewhere are not reported as races.
template <typename T>
AM_ALWAYS_INLINE void owner_store(T& field, T value) {
#ifdef AM_TSAN
  __atomic_store_n(&field, value, __ATOMIC_RELAXED);
#else
  field = value;
#endif
}

// The owner's side of the GC protocol. Plain increments: a GC that reads an even
// value after its membarrier knows no operation is in flight (thread_cache_gc.cc).
// ThreadSanitizer cannot see membarrier's fence, so its builds use seq_cst
// atomics, which make the same argument in the language's own memory model.
AM_ALWAYS_INLINE FreeList* tc_begin(ThreadCache& tc) {
#ifdef AM_TSAN
  __atomic_store_n(&tc.seq, tc.seq + 1, __ATOMIC_SEQ_CST);
  return __atomic_load_n(&tc.active, __ATOMIC_SEQ_CST);
#else
  ++tc.seq;
  AM_COMPILER_BARRIER();
  return tc.active;
#endif
}
// tc_end's even store must not become visible before the operation's list
// stores (the GC reads an even seq as "its stores are complete"). x86-64 keeps
// stores in program order (TSO): a plain increment, one instruction. Elsewhere
// a release store (stlr on AArch64) gives the same order.
AM_ALWAYS_INLINE void tc_end(ThreadCache& tc) {
#ifdef AM_TSAN
  __atomic_store_n(&tc.seq, tc.seq + 1, __ATOMIC_SEQ_CST);
#elif defined(__x86_64__)
  AM_COMPILER_BARRIER();
  ++tc.seq;
#else
  __atomic_store_n(&tc.seq, tc.seq + 1, __ATOMIC_RELEASE);
#endif
}

// The free fast path's room test: counts one more object on the list and
// returns true if it fits; false (the list is full, or the shared empty lists)
// after undoing nothing: the caller stores slack = 0 before it leaves (exact for
// a full list, whose slack was 0, and the only value of the empty lists).
// No atomic read-modify-write outside TSan builds (which need one to see the
// racy increments of the shared empty lists as intended).
AM_ALWAYS_INLINE bool list_take_one(FreeList& fl) {
#if defined(AM_TSAN)
  return __atomic_add_fetch(&fl.slack, 1, __ATOMIC_RELAXED) <= 0;
#elif defined(__x86_64__)
  asm goto("addl $1, %0\n\tjg %l[full]" : : "m"(fl.slack) : "cc", "memory" : full);
  return true;
full:
  return false;
#else
  int32_t s = fl.slack + 1;
  fl.slack = s;
  return s <= 0;
#endif
}

// Slow paths behind the fast path's misses (front/alloc_slow.cc): an object of
// class cl from this thread's lists after a refill (nullptr when the tiers below
// had no memory: *status says why, and the caller applies the memory-limit
// policy and sets errno),
// and a free that found the list full (overflow). Noinline: they must not
// bloat the callers.
AM_NOINLINE void* thread_cache_alloc_slow(uint32_t cl, HeapStatus* status);
// Returns false, taking nothing, when p is the head of the thread's list of
// class cl: it is free already (the caller reports the double free).
AM_NOINLINE bool thread_cache_free_slow(void* p, uint32_t cl);

// The pthread key destructor (registered by init) and fork support.
void thread_cache_on_thread_exit(void* tc);
void thread_cache_set_key(unsigned key);
// fork module (front/fork.cc): the calling thread's own gc_lock, in rank order.
void thread_cache_lock_self_for_fork();
void thread_cache_unlock_self_after_fork(bool child);
// Total objects' bytes cached by all threads (relaxed reads: exact when idle).
size_t thread_cache_total_bytes();
size_t thread_cache_count();
// Bypass mode (malloc hooks, the heap checker): while on, no thread uses its
// cache on the fast path; every operation reaches the slow path, which serves
// it from the thread's lists under its gc_lock. Nested: on/off pairs count.
void thread_cache_set_bypass(bool on);
extern constinit std::atomic<int> g_bypass;
inline bool thread_cache_bypassed() { return g_bypass.load(std::memory_order_relaxed) != 0; }
// Empties the calling thread's cache (am_thread_cache_flush).
void thread_cache_flush_self();

}  // namespace am

// ThreadCache: per-thread, per-size-class free lists; the tier the fast path uses.
//
// Owns: the thread-local cache (initial-exec, constinit, trivially destructible:
// an all-zero cache is a valid empty one whose every operation falls to the slow
// path), its growth policy, and the per-thread and total caps.
//
// Fast path (alloc_fast.h): pop from lists[cl] if non-empty; push onto lists[cl]
// if length < max_length. Nothing else: no lock, no atomic read-modify-write.
// Slow path (this file): refill a batch from the central tier, or flush a batch
// back, and adapt max_length: +1 per miss up to the class's batch size (slow
// start), then +batch per miss up to kMaxListLength; a list that overflows more
// than kMaxOverages times in a row shrinks by one batch. Growth draws on the
// thread's byte budget (AMMALLOC_THREAD_CACHE_MAX), claimed in 64 KiB chunks from
// the process-wide budget (AMMALLOC_THREAD_CACHE_TOTAL); when the budget is
// exhausted the thread steals capacity from its other lists, round-robin.
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
#include "size_class.h"

namespace am {

struct FreeList {
  void* head;
  uint32_t length;      // objects on the list; stats read it from other threads
  uint32_t max_length;  // the fast path frees only while length < max_length
};

struct ThreadCache {
  enum State : uint8_t { kUninit = 0, kActivating, kActive, kDead };

  FreeList lists[kNumClasses];  // hot: the only part the fast path touches

  // ---- cold: slow path, registry and stats --------------------------------
  State state;
  uint8_t overages[kNumClasses];
  uint32_t next_victim;
  size_t capacity_bytes;  // sum over classes of max_length * size
  size_t claimed_bytes;   // share of the process-wide budget held by this thread
  int tid;
  ThreadCache* list_prev;
  ThreadCache* list_next;

  void* refill(uint32_t cl);
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
  void release_to_central(uint32_t cl, uint32_t n);
};

extern constinit thread_local ThreadCache tls_cache AM_TLS_IE;

// Slow paths called by alloc_fast.h (noinline: they must not bloat the fast path).
AM_NOINLINE void* thread_cache_alloc_slow(uint32_t cl);
AM_NOINLINE void thread_cache_free_slow(void* p, uint32_t cl);

// Called once by init: budget sizes from the options.
void thread_cache_configure(size_t per_thread_max, size_t total);
// The pthread key destructor (registered by init) and fork support.
void thread_cache_on_thread_exit(void* tc);
void thread_cache_set_key(unsigned key);
// Total objects' bytes cached by all threads (relaxed reads: exact when idle).
size_t thread_cache_total_bytes();
size_t thread_cache_count();

}  // namespace am

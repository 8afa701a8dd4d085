// TransferCache: per size class, a lock-free exchange of whole batches between
// the thread caches that free and the thread caches that allocate, in front of
// the central cache (whose lock it saves).
//
// Owns: for each class a bounded ring of batch slots (a few batches, fewer for
// big classes: see kClassBytes in the .cc) and its hit/miss counters. A batch
// is exactly class_info(cl).batch objects linked through their first word, the
// last one's link null. Partial batches never enter: they go to the central
// cache directly.
// Locks: none. The algorithm and why it is correct (also across fork) are at
// the top of transfer_cache.cc. AMMALLOC_TRANSFER_CACHE=0 turns it off: every
// operation then goes to the central cache, and nothing is counted.
#pragma once

#include <cstddef>
#include <cstdint>

#include "heap/page_heap.h"

namespace am {

// Up to n objects of class cl into a chain (*head, null-terminated); returns
// how many (0 only if the page heap had no span: *status says why). A request for exactly one batch
// is served from the transfer cache when it has one (a hit), else from the
// central cache (a miss).
int transfer_remove_range(uint32_t cl, void** head, int n, HeapStatus* status = nullptr);
// Gives back a chain of n objects of class cl. Exactly one batch goes into the
// transfer cache if it has room (a hit), else (a miss, or any other n) to the
// central cache.
void transfer_insert_range(uint32_t cl, void* head, int n);

// True if the ring of class cl seems to hold a batch (a racy peek: a removal
// right after it may still miss).
bool transfer_has_batch(uint32_t cl);

// Gives back batches nobody takes: a class whose ring was not drawn from since
// the previous pass (>= 1 s ago) hands all its batches to the central cache, so
// their spans can go back to the page heap and RSS can fall after a peak. At
// most one pass per second whoever calls (the background thread every tick,
// thread-cache trims with their clock); returns the batches moved.
size_t transfer_cache_decay(uint64_t now_ns);

// Bytes of the objects held, all classes / objects held of one class. Exact in
// a quiet process; with operations in flight a claimed slot counts as full.
size_t transfer_cache_free_bytes();
size_t transfer_class_objects(uint32_t cl);
// Batch slots of class cl (a power of two >= 2).
uint32_t transfer_class_slots(uint32_t cl);

struct TransferCounters {
  size_t hits = 0;    // batches handed over without the central lock
  size_t misses = 0;  // batch operations that had to take it (empty / full)
};
TransferCounters transfer_cache_counters();
void transfer_cache_reset_counters();

// Every batch held goes to the central cache (am_reset: then the page heap can
// get whole spans back). Safe while other threads use the cache.
void transfer_cache_drain_all();

// fork() child, after the allocator's locks are reset: a slot operation that
// another thread of the parent had half done is repaired (see the .cc).
void transfer_cache_after_fork_child();

bool transfer_cache_enabled();

}  // namespace am

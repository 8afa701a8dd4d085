// CentralCache: per size class, the spans that have free objects.
//
// Owns: for each class, a list of kSmall spans with at least one free object and
// the count of free objects in them. Thread caches (through the transfer tier)
// take and return objects in batches, linked through their first word.
// Lock: one LockRank::kCentral lock per class; a thread never holds two. Calls
// into the page heap (higher rank) with it held.
// Invariants: span->in_use counts objects outside the span (thread caches and
// application); a span with in_use == 0 goes back to the page heap at once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "heap/page_heap.h"

namespace am {

// Moves up to n objects of class cl into a chain; returns how many (0 only if
// the page heap had no span: *status, if not nullptr, says why). *head is the
// first; the last one's next word is null.
int central_remove_range(uint32_t cl, void** head, int n, HeapStatus* status = nullptr);
// Returns a chain of n objects of class cl (linked through their first word).
void central_insert_range(uint32_t cl, void* head, int n);

struct CentralClassStats {
  size_t spans = 0;
  size_t free_objects = 0;   // carved or not, in spans owned by the central cache
  size_t lock_acquisitions = 0;
};
CentralClassStats central_class_stats(uint32_t cl);
// Sum of the per-class lock acquisitions, and their reset (am_reset).
size_t central_lock_acquisitions();
void central_reset_counters();
// Free object bytes plus span tail waste, all classes.
size_t central_free_bytes();

void central_lock_all_for_fork();
void central_unlock_all_after_fork(bool child);

}  // namespace am

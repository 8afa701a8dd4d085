// PageHeap: the page-level heap. Hands out spans (runs of 8 KiB pages) and takes
// them back, coalescing free neighbours.
//
// Owns: every span record (via a pool) and the free lists. Free spans are kept
// in two sets: "backed" (resident, reused first: no page faults) and "released"
// (returned to the OS with madvise, or fresh from mmap: zero when touched).
// Each set has exact lists for 1..128 pages with a bitmap of the non-empty ones,
// and one list for longer spans searched best-fit (smallest that fits, then
// lowest address). Neighbours coalesce when both are free and in the same set.
// Lock: LockRank::kPageHeap. Callers may hold a central lock (lower rank).
// Invariants: a free span's first and last pages map to it in the pagemap; a
// live span's pages all map to it if kSmall, its first and last if kLarge.
#pragma once

#include <cstddef>
#include <cstdint>

#include "span.h"

namespace am {

struct PageHeapStats {
  size_t free_bytes = 0;        // free and resident
  size_t released_bytes = 0;    // free and returned to the OS (or never touched)
  size_t small_span_bytes = 0;  // spans owned by the central cache
  size_t large_bytes = 0;       // spans handed out as large objects
  size_t large_count = 0;
  size_t free_spans = 0;
  size_t largest_free_bytes = 0;  // longest free span of either set
  size_t peak_in_use_bytes = 0;   // max of small_span_bytes + large_bytes
  size_t resident_bytes = 0;      // mapped and not released
  size_t resident_peak = 0;
};

// A large object of `pages` pages aligned to `align_pages` pages (a power of two;
// 1 = page aligned). *zeroed says whether the memory is known to read as zero.
// nullptr if the OS refused memory.
Span* page_heap_alloc_large(size_t pages, size_t align_pages, bool* zeroed);
void page_heap_free_large(Span* s);

// A span carved for size class cl (state kSmall, pagemap small info written).
Span* page_heap_alloc_small(uint32_t cl);
void page_heap_free_small(Span* s);

// Returns to the OS (madvise) every backed free span that has been free since
// before `freed_before_ns` (UINT64_MAX: all of them). The page-heap lock is not
// held during the madvise calls. Returns the bytes released.
size_t page_heap_release(uint64_t freed_before_ns);
inline size_t page_heap_release_all() { return page_heap_release(~uint64_t{0}); }

// Memory limit on resident heap bytes (mapped and not released); 0 = none. An
// allocation that would need more resident pages than the limit allows fails
// (nullptr) and page_heap_limit_hit() says so, so the caller can react outside
// every lock (memory_limit.cc).
void page_heap_set_limit(size_t bytes);
size_t page_heap_limit();
bool page_heap_limit_hit();
size_t page_heap_resident_bytes();
size_t page_heap_resident_peak();
void page_heap_reset_peaks();

PageHeapStats page_heap_stats();

void page_heap_lock_for_fork();
void page_heap_unlock_after_fork(bool child);

}  // namespace am

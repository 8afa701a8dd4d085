// PageHeap: the page-level heap. Hands out spans (runs of 8 KiB pages) and takes
// them back, coalescing free neighbours.
//
// Owns: every span record (via a pool) and the free lists. Free spans are kept
// in two sets: "backed" (resident, reused first: no page faults) and "released"
// (returned to the OS with madvise, or fresh from mmap: zero when touched).
// Each set has exact lists for 1..128 pages with a bitmap of the non-empty ones,
// and longer spans in two intrusive treaps (page_heap_tree.h, links in the
// Span record): by size, for best fit in O(log n) (smallest that fits, then
// lowest address), and by free time, for the growth offset and the scavenger
// (the longest idle first). Neighbours coalesce when both are free and in the
// same set, never across the edge of a region with a reservation of its own
// (system_alloc.h: such a region, once free, is one span and can be unmapped).
// A request that no span of either set fits takes, before the heap grows, the
// shortest run of adjacent free spans of both sets that is long enough (only
// its released pages become resident, not a whole new region's); the runs
// are found through each partition's list of joined spans (free spans whose
// right neighbour is free too), not by a walk over every free span.
// The spans of recently freed large objects are kept whole, outside the sets,
// for the next request of about their size; a large request that none fits
// puts them all back first (page_heap_cache.cc: the bounds, and why).
//
// NUMA (numa_topology.h): the sets are per partition (one per node with
// AMMALLOC_NUMA=local, else one). A region belongs to one partition, so do all
// spans carved from it (Span::node); allocations take from the calling CPU's
// partition (backed, then released, then a new region for that partition),
// frees go back to the span's partition, and only spans of one partition
// coalesce. Under a memory limit, resident free pages of another partition
// are used before an allocation fails.
//
// Huge pages (hugepage_map.h; with THP on, which heap/hugepage_map.h decides).
// Regions are 2 MiB-aligned, so every 2 MiB "huge page range" lies in one
// region, and the heap counts live pages per range. Placement fills partly
// used ranges before it breaks into wholly free ones: best fit with coalescing
// already does most of it (a wholly free range coalesces into a span of >= 256
// pages, chosen only when no smaller hole fits), and ties go to spans in
// ranges with live pages (exact lists: the first such span among the first 8;
// long spans: the first such among the first 8 of the smallest size that
// fits, in address order, else the lowest address).
// Release (page_heap_release.cc) is mechanism: it takes the backed free runs a
// ReleaseRule selects out of the sets under the lock, madvises them without
// it, and puts them back as released. The rule is policy: the background
// scavenger's (policy/scavenger.h: how long idle, and by huge page range:
// wholly free and sparse ranges go, dense ones wait longer);
// page_heap_release_all (am_release_free_memory, the memory limit) releases
// every backed free page regardless. With THP active each run is
// extended over the released free pages next to it in the same range (fresh,
// or released earlier, but resident as part of a huge page the kernel faulted
// in whole), so a wholly free range goes as one 2 MiB piece.
// A range released in part loses its huge page; it is advised MADV_NOHUGEPAGE
// so that khugepaged does not collapse it again (which, with the kernel's
// default max_ptes_none, would make the released pages resident zeros), and
// MADV_HUGEPAGE again when it is released whole or is 7/8 live again.
// Growth offset (a rule that stays here, decided inside an allocation under
// the lock; page_heap.cc): a large request (> 1 MiB) that no resident free
// span fits releases as much resident free memory in spans > 1 MiB, the
// longest idle first, as the resident set grows by.
// Reports (heap/work_report.h): >= 1 MiB of free resident pages, or 32 MiB
// mapped, may be work for the background thread; the policy decides.
// Lock: LockRank::kPageHeap. Callers may hold a central lock (lower rank).
// Invariants: a free span's first and last pages map to it in the pagemap; a
// live span's pages all map to it if kSmall, its first and last if kLarge; a
// range's live count is the number of its pages in kSmall/kLarge spans.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/numa_topology.h"
#include "core/span.h"

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
  size_t offset_released_bytes = 0;  // released to offset growth (see page_heap.cc)
  size_t releasing_bytes = 0;        // in flight to the OS (kReleasing, in no set)
  size_t cached_bytes = 0;           // the large-span cache's (in free_bytes too)
};

// What an allocation did: kOk (a span), kNoMemory (the OS refused memory, for
// the pages or for the metadata that records them: a span record, a map
// leaf; or the request overflows), kLimit (it would take the resident heap past the
// memory limit: the caller may release memory and retry, outside every lock;
// policy/memory_limit.cc).
enum class HeapStatus : uint8_t { kOk, kNoMemory, kLimit };

// A large object of `pages` pages aligned to `align_pages` pages (a power of two;
// 1 = page aligned). *zeroed says whether the memory is known to read as zero.
// nullptr on failure; *status (if not nullptr) is set on every return.
// room_pages: the span is taken `room_pages` longer and the surplus goes back
// to the free sets at once, right after the object and in its own set (pages
// never touched stay released), so that a buffer that keeps growing can grow
// in place (page_heap_resize_large). The limit counts the room too.
Span* page_heap_alloc_large(size_t pages, size_t align_pages, bool* zeroed, HeapStatus* status = nullptr,
                            size_t room_pages = 0);
void page_heap_free_large(Span* s);
// realloc in place: makes the large span s (state kLarge, no guard page, not
// sampled) `pages` pages long without moving it. Shrinking gives the tail back
// to the free sets (coalescing); growing takes the pages from the free span
// right after s (backed or released: released pages become resident, counted
// against the memory limit). False, with s unchanged, when the pages after s
// are not free or too few (*status, if not nullptr, says kLimit when the limit
// stopped it, kNoMemory when no span record could be had): the caller moves
// the block.
bool page_heap_resize_large(Span* s, size_t pages, HeapStatus* status = nullptr);

// A span carved for size class cl (state kSmall, pagemap small info written).
// nullptr on failure; *status (if not nullptr) is set on every return.
Span* page_heap_alloc_small(uint32_t cl, HeapStatus* status = nullptr);
void page_heap_free_small(Span* s);

// Which backed free pages a release takes. Decided by the caller (the
// scavenger policy, policy/scavenger.h); the default rule takes all of them.
struct ReleaseRule {
  // Backed free spans free since before this (ns, os::now_ns) go; ~0: all.
  uint64_t freed_before_ns = ~uint64_t{0};
  // Huge-page verdict (meaningful with thp_active(): the policy sets it
  // then). Off: every idle span goes whole. On: an idle span's pages go by
  // 2 MiB range: those of a range with at most sparse_live_pages live pages
  // (wholly free ranges included) go, those of a denser range only if the
  // span has been free since before dense_before_ns.
  bool by_huge_page = false;
  uint32_t sparse_live_pages = 0;
  uint64_t dense_before_ns = 0;
  // Regions of 1 GiB or more (a reservation of their own, heap/system_alloc.h)
  // that are wholly free since before this are unmapped (not only madvised):
  // a spike of huge buffers leaves no address space behind. ~0: all.
  uint64_t unmap_before_ns = ~uint64_t{0};
};

// Unmaps the wholly free regions of 1 GiB or more that `rule` selects
// (unmap_before_ns), then returns to the OS (madvise) the backed free pages
// `rule` selects. The
// page-heap lock is not held during the madvise calls. Ranges advised
// MADV_NOHUGEPAGE earlier that are 7/8 live again get MADV_HUGEPAGE back.
// Returns the backed bytes released.
size_t page_heap_release(const ReleaseRule& rule);
// Every backed free page, whatever its idle time or huge page range.
size_t page_heap_release_all();

// Memory limit on resident heap bytes (mapped and not released): the option
// kOptMemoryLimit (0 = none; AMMALLOC_MEMORY_LIMIT, am_option_set,
// am_set_memory_limit), read here, at each allocation that needs new resident
// pages. One that would exceed it fails (nullptr, HeapStatus::kLimit), so the
// caller can react outside every lock (policy/memory_limit.h). The status
// travels up the call chain (central and transfer cache, thread cache) to the
// front end, which applies the policy.
size_t page_heap_resident_bytes();
size_t page_heap_resident_peak();
void page_heap_reset_peaks();

PageHeapStats page_heap_stats();

// One NUMA partition's share (mapped = free + released + small + large).
struct PageHeapPartitionStats {
  int node = -1;  // the real node its regions are bound to (-1: not bound)
  size_t mapped = 0;
  size_t free_bytes = 0;
  size_t released_bytes = 0;
  size_t small_span_bytes = 0;
  size_t large_bytes = 0;
};
int page_heap_partitions();
PageHeapPartitionStats page_heap_partition_stats(int partition);
NumaInfo page_heap_numa_info();

// Hold times of the page-heap lock in the allocation and free calls
// (page_heap_alloc_large/small, page_heap_free_large/small), for benchmarks
// (test/bench/pageheap_spans.cc): off by default; when on, each of those
// calls reads the clock twice while it holds the lock. Not an option: only
// a program linked with the core library turns it on.
struct PageHeapLockTiming {
  uint64_t count = 0;
  uint64_t total_ns = 0;
  uint64_t max_ns = 0;
};
void page_heap_time_lock(bool on);
// The figures since the last call (or since timing was turned on); resets them.
PageHeapLockTiming page_heap_take_lock_timing();

void page_heap_lock_for_fork();
void page_heap_unlock_after_fork(bool child);

}  // namespace am

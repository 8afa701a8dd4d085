// SystemAlloc: heap regions from the OS.
//
// Owns: address space reserved in large chunks and the 2 MiB-aligned regions
// (multiples of 2 MiB) committed from it for the page heap, their placement
// advice, the count of heap bytes mapped, and guard pages.
// Reserve, then commit: address space is reserved inaccessible (PROT_NONE,
// MAP_NORESERVE: no memory, no commit charge) 1 GiB at first, each next
// reservation twice the last up to 64 GiB, and regions are committed
// (mprotect read-write) from it top down; the next reservation is asked for
// right below the current one (MAP_FIXED_NOREPLACE), which the kernel's
// top-down placement nearly always leaves free, so neighbouring regions are
// one mapping: a heap of any size is a handful of mappings (it was two per
// 2 MiB region, each with a hole beside it). Where that range is taken, a new
// reservation starts elsewhere and the old one's free part is unmapped.
// A region of 1 GiB or more (kOwnReservationBytes) gets a reservation of its
// own, so that it can be unmapped whole when it is free again
// (system_free_region; the page heap's unmap rule, page_heap.h).
// A request no machine could back (more than RAM + swap, or RLIMIT_AS) is
// refused before anything is reserved (system_could_back), and a
// reservation whose commit fails is unmapped again. A region's leaves in the
// pagemap and the 2 MiB map are made before it is committed: when the OS
// refuses memory for them, the region is not committed (its range stays
// reserved, or its own reservation is unmapped), so a region the page heap
// could not record never exists.
// Freed pages otherwise go back with madvise (page_heap_release.cc).
// Placement, applied here (mechanism) without the page heap knowing how, per
// decisions made where their inputs are read:
//  - transparent huge pages (hugepage_map.h): a region is marked as heap in
//    the 2 MiB map, then advised per the THP mode and the 32 MiB small-heap
//    deferral, both decided in hugepage_map.cc (AMMALLOC_THP, sysfs);
//  - NUMA (core/numa_topology.h): a region belongs to one page-heap partition
//    and is bound to that partition's node (local) or interleaved, per the
//    mode numa_settle() decided (AMMALLOC_NUMA, libnuma).
// Both before the first touch: the kernel picks page size and node when a page
// faults in.
// Guard pages (AMMALLOC_GUARD_PAGES, front/alloc_slow.cc): MADV_GUARD_INSTALL
// where the kernel has it (Linux 6.13+: no mapping split); otherwise mprotect,
// until 16,384 guards (each splits a mapping in three) have been placed; then
// no more guards, said once on stderr and counted (system_guard_pages_skipped).
// Locks: the caller's page-heap lock for regions; the byte counts are relaxed
// atomics (read by stats without the lock); guards take no lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

struct SystemRegion {
  uintptr_t start = 0;
  size_t bytes = 0;
};

// Maps at least `min_bytes` (rounded up to 2 MiB) for NUMA partition
// `partition`, with its pagemap leaves in place (pagemap_ensure is true for
// it). start == 0 on failure, and then nothing was committed.
SystemRegion system_alloc_region(size_t min_bytes, int partition = 0);
// Regions of at least this many bytes have a reservation of their own.
inline constexpr size_t kOwnReservationBytes = size_t{1} << 30;
// The regions with a reservation of their own (up to 4,096 of them; the
// caller's page-heap lock): system_own_region(i) for i < system_own_regions().
size_t system_own_regions();
SystemRegion system_own_region(size_t i);
// Takes region i out of the table (the last one takes its index) and out of
// the huge page map; then system_free_region unmaps it (without the lock).
void system_forget_region(size_t i);
void system_free_region(uintptr_t start, size_t bytes);
// Whether `bytes` could ever be backed: at most RAM + swap, and what
// RLIMIT_AS allows. Callers refuse larger requests before reserving anything.
bool system_could_back(size_t bytes);
size_t system_mapped_bytes();    // committed regions (the heap's mapped bytes)
size_t system_reserved_bytes();  // address space reserved (committed or not)

// Makes the page at page_addr (a kPageSize page of a live large span) an
// inaccessible guard (install) or ordinary memory again (!install). False if
// no guard was placed (or removed).
bool system_guard_page(uintptr_t page_addr, bool install);
// Guards not placed because the mprotect budget was used.
size_t system_guard_pages_skipped();

}  // namespace am

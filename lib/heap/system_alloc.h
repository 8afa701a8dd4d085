// SystemAlloc: heap regions from the OS.
//
// Owns: mapping 2 MiB-aligned regions (multiples of 2 MiB) for the page heap,
// their placement advice, and the count of heap bytes mapped. The caller holds
// the page-heap lock. Regions are never unmapped: freed pages go back with
// madvise (their address range stays ours, so pagemap entries and neighbours
// stay valid).
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
// Invariants: g_mapped only grows (regions are never unmapped).
// Locks: the caller's page-heap lock; the byte count is a relaxed atomic
// (read by stats without the lock).
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

struct SystemRegion {
  uintptr_t start = 0;
  size_t bytes = 0;
};

// Maps at least `min_bytes` (rounded up to 2 MiB) for NUMA partition
// `partition`. start == 0 on failure.
SystemRegion system_alloc_region(size_t min_bytes, int partition = 0);
size_t system_mapped_bytes();

}  // namespace am

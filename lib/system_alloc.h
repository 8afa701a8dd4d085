// SystemAlloc: heap regions from the OS.
//
// Owns: mapping 2 MiB-aligned regions (multiples of 2 MiB) for the page heap,
// and the count of heap bytes mapped. The caller holds the page-heap lock.
// Regions are never unmapped: freed pages go back with madvise (their address
// range stays ours, so pagemap entries and neighbours stay valid).
// Seams: transparent huge pages and NUMA placement act here (region advice and
// binding) without the page heap knowing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

struct SystemRegion {
  uintptr_t start = 0;
  size_t bytes = 0;
};

// Maps at least `min_bytes` (rounded up to 2 MiB). start == 0 on failure.
SystemRegion system_alloc_region(size_t min_bytes);
size_t system_mapped_bytes();

}  // namespace am

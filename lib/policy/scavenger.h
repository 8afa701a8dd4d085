// Scavenger policy: which idle free pages of the page heap go back to the OS
// on a background pass. The page heap's release (heap/page_heap.h,
// page_heap_release) is the mechanism; this file decides the ReleaseRule.
//
// Owns the rules (with THP active, i.e. thp_active(): the heap has mapped
// kThpMinHeapBytes = 32 MiB and THP is on; heap/hugepage_map.h). From a
// backed span idle since before the cutoff (the caller's: now - release
// delay, AMMALLOC_RELEASE_DELAY_MS), it releases
//   - every wholly free 2 MiB range;
//   - the free pages of a sparse range (at most 1/4 of its pages live): that
//     huge page is mostly waste, splitting it is worth it;
// and leaves the free pages of a dense range (> 1/4 live) resident until
// they have been idle half again as long as the release delay (dense cutoff
// now - 1.5 x delay): releasing them splits a huge page that still backs
// live data (TLB reach) to gain < 1.5 MiB, which only pays when they are not
// about to be reused.
// Without THP active every span idle since before the cutoff goes whole.
// Unmap rule: a region of 1 GiB or more (a reservation of its own,
// heap/system_alloc.h) that is wholly free and idle since before the same
// cutoff is unmapped, not madvised: a spike of huge buffers leaves no
// address space behind (pagemap leaves stay: 3 MiB per 2 GiB, mostly untouched).
// Not here: page_heap_release_all (am_release_free_memory, the memory limit)
// takes everything, and the growth offset (page_heap.cc) is decided inside
// an allocation, under the page-heap lock, from what that allocation took.
// Locks: none of its own; the release takes the page-heap lock in batches.
#pragma once

#include <cstddef>
#include <cstdint>

#include "heap/hugepage_map.h"
#include "heap/page_heap.h"

namespace am {

// A range with at most this many live pages (1/4) is sparse.
inline constexpr uint32_t kScavengeSparseLivePages = static_cast<uint32_t>(kPagesPerHugePage / 4);
// Free pages of a dense range go only when idle this much longer than the
// release delay (as a fraction of it): half again as long.
inline constexpr uint64_t kScavengeDenseExtraNum = 1, kScavengeDenseExtraDen = 2;

// The rule for a pass at now_ns that releases what was freed before
// freed_before_ns (= now - delay; the dense cutoff is derived from the delay).
ReleaseRule scavenger_rule(uint64_t freed_before_ns, uint64_t now_ns, bool thp_active);
// One scavenger pass: page_heap_release(scavenger_rule(freed_before_ns,
// now, thp_active())). Returns the backed bytes released.
size_t scavenger_release(uint64_t freed_before_ns);

}  // namespace am

// Transparent huge pages: the mode in force and the per-2 MiB bookkeeping the
// page heap's placement and release need. (How much of the heap the kernel
// really backs with huge pages is measured above: observe/heap_usage.h.)
//
// Mechanism and decision. The 2 MiB map and the advice calls are mechanism.
// Two decisions live here too, on purpose: the THP mode and the small-heap
// deferral. Both are needed inside the system tier at the moment a region is
// mapped (under the page-heap lock, before any page of it is touched), where
// nothing above the heap runs; so they are made here, lazily, once, from
// inputs read where they are used (AMMALLOC_THP through option(), the
// kernel's sysfs setting), rather than pushed down by a policy. The release
// rules that depend on huge pages are policy and live above
// (policy/scavenger.h).
//
// Owns:
//  - the THP mode (a decision): AMMALLOC_THP (default on) AND the kernel's setting in
//    /sys/kernel/mm/transparent_hugepage/enabled being [always] or [madvise].
//    Decided once, at the first use after the options are read (a region's
//    advice is given at map time, so the mode never changes afterwards). On: regions are
//    madvised MADV_HUGEPAGE. Off while the kernel says [always]: regions are
//    madvised MADV_NOHUGEPAGE, so "off" means off.
//  - small-heap deferral (a decision): with the mode on, regions are advised only once the
//    heap has mapped kThpMinHeapBytes (thp_active()); then every region so far
//    is advised at once, and every later one at map time. A small program's
//    first touch of its heap would otherwise fault in a whole 2 MiB page
//    (with THP in [madvise] mode: `ls` 6.3 MiB RSS instead of 4.4; a 1-thread
//    C++ program's 5.6 MiB instead of 3.5), and a heap that small gains little
//    TLB reach from huge pages. Under [always] the early regions are advised
//    MADV_NOHUGEPAGE until then. The scavenger's huge-page rules
//    (policy/scavenger.h) apply from then on, too. Why 32 MiB: a heap of tens of
//    MiB gets most of its TLB reach from 4 KiB pages and the L2 TLB, while
//    huge pages round its RSS up by whole 2 MiB pages (sqlite3 on a 2 MB SQL
//    script, test/bench: 20.1 MiB peak RSS with THP from 8 MiB, 16.7 MiB with
//    the heap below 32 MiB; glibc 11.7); inference heaps of GiBs are far past it.
//  - a radix map over the address space at 2 MiB granularity ("huge page
//    ranges", each entirely inside one region since regions are 2 MiB-aligned
//    multiples of 2 MiB). Per range: whether it is heap, and how many of its
//    pages are in live spans (kSmall or kLarge). The page heap uses the count to
//    tell partly used ranges from wholly free ones (placement: page_heap.h;
//    release: policy/scavenger.h); the heap bit lets observe/heap_usage
//    attribute smaps records to us; a third bit remembers ranges the
//    scavenger advised MADV_NOHUGEPAGE.
//    Root: 2^13 pointers in .bss; leaves of 2^14 16-bit entries (32 KiB, 32 GiB
//    of address space each) from the metadata arena, never freed.
// Locks: the map is written under the page-heap lock; the heap bits are read
// without it (a leaf pointer is published with release, the bit is set before
// the region is handed to the page heap and never cleared).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/config.h"

namespace am {

inline constexpr size_t kHugePageShift = 21;
inline constexpr size_t kHugePageSize = size_t{1} << kHugePageShift;
inline constexpr size_t kPagesPerHugePage = kHugePageSize >> kPageShift;  // 256 with 8 KiB pages
static_assert(kRegionAlign == kHugePageSize, "regions must be huge-page aligned");

enum class ThpKernelMode : uint8_t { kUnsupported = 0, kNever, kMadvise, kAlways };
// The kernel's setting, read from sysfs on every call (tests, stats).
ThpKernelMode thp_kernel_mode();
const char* thp_kernel_mode_name(ThpKernelMode m);

// The mode in force (latched on the first call; see above).
bool thp_enabled();
// Mapped heap bytes from which regions are advised MADV_HUGEPAGE (see above).
inline constexpr size_t kThpMinHeapBytes = size_t{32} << 20;
// thp_enabled() and the heap has reached kThpMinHeapBytes: regions are advised.
bool thp_active();
// Region advice at map time (system_alloc.cc), per the mode and the
// deferral: MADV_HUGEPAGE once thp_active() (the first call that gets there
// advises every region mapped so far), MADV_NOHUGEPAGE before that or with
// the mode off while the kernel says [always], else nothing. Page-heap lock.
void thp_advise_region(void* p, size_t bytes);

// --- the 2 MiB map (page-heap lock held) ------------------------------------
inline uintptr_t hugepage_of_page(uintptr_t page) { return page >> (kHugePageShift - kPageShift); }
inline uintptr_t first_page_of_hugepage(uintptr_t hp) { return hp << (kHugePageShift - kPageShift); }
// Makes sure the map has leaves for [start, start + bytes) (2 MiB-aligned).
// False if the OS refused memory for a leaf (or the range is past the
// address space); nothing is marked either way.
bool hugepage_map_prepare(uintptr_t start, size_t bytes);
// Marks [start, start + bytes) as heap; its leaves exist (hugepage_map_prepare
// said so), so this cannot fail.
void hugepage_map_region(uintptr_t start, size_t bytes);
// A region with a reservation of its own (heap/system_alloc.h): its first and
// last ranges are marked, and free spans never merge across its edges
// (hugepage_own_boundary: pages left_page and left_page + 1 are on two
// sides of such an edge), so once free it is one span, unmapped whole.
void hugepage_mark_own_region(uintptr_t start, size_t bytes);
bool hugepage_own_boundary(uintptr_t left_page);
// The region's ranges are not heap any more (unmapped).
void hugepage_unmap_region(uintptr_t start, size_t bytes);
// Adds (delta = +1) or removes (-1) `pages` live pages starting at first_page.
void hugepage_note_live(uintptr_t first_page, size_t pages, int delta);
// Live pages in the huge page range hp (0 = wholly free).
uint32_t hugepage_live_pages(uintptr_t hp);
// True if any huge page range touched by [first_page, first_page + pages) has live pages.
bool hugepage_any_live(uintptr_t first_page, size_t pages);
// True if the range at addr's 2 MiB is heap (lock-free).
bool hugepage_is_heap(uintptr_t addr);
// "Dehugified": the scavenger released part of the range and advised it
// MADV_NOHUGEPAGE, so that khugepaged does not collapse it into a huge page
// again (with the kernel's default max_ptes_none of 511 it would, making the
// released pages resident as zeros). The advice goes back to MADV_HUGEPAGE
// when the whole range is released. Sets the flag; returns the old value.
bool hugepage_set_dehugified(uintptr_t hp, bool on);
// Dehugified ranges that are dense again (at least min_live live pages): their
// flags are cleared and up to max of them stored in out[], for the caller to
// advise MADV_HUGEPAGE again (khugepaged then collapses them; the free pages
// it fills with zeros are few). Returns the count.
size_t hugepage_take_dense_dehugified(uint32_t min_live, uintptr_t* out, size_t max);

}  // namespace am

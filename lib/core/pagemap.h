// PageMap: radix tree from page number to span, and to size class for a fast free.
//
// Owns: a two-level tree over the 48-bit address space (35 bits of page number
// with 8 KiB pages): a 2^17-entry root in .bss (1 MiB of untouched zero pages)
// and leaves of 2^18 pages (2 GiB of address space each) mapped on demand.
// Each leaf holds, per page, the span pointer and a 32-bit "small info":
//   bits 0..7   size class (0 = not a small-object page)
//   bits 8..31  byte offset of this page from its span's start
// so free() can find the class AND check that the pointer is the start of an
// object (offset % size == 0, by one multiply) without touching the span.
//
// Writes happen under the page-heap lock. Reads are lock-free: a leaf pointer is
// published with release and never freed; an entry is written before the span's
// memory is handed out, and the hand-out itself (through a lock, then whatever
// synchronisation the application uses to pass a pointer) orders the two.
// Invariant: small info is non-zero only on the pages of live kSmall spans.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/attributes.h"
#include "core/config.h"
#include "core/span.h"

namespace am {

inline constexpr size_t kPageNumBits = kAddressBits - kPageShift;  // 35
inline constexpr size_t kLeafBits = 18;
inline constexpr size_t kRootBits = kPageNumBits - kLeafBits;  // 17
inline constexpr size_t kLeafSize = size_t{1} << kLeafBits;
inline constexpr size_t kRootSize = size_t{1} << kRootBits;

struct PageMapLeaf {
  Span* span[kLeafSize];
  uint32_t small_info[kLeafSize];
};

extern constinit std::atomic<PageMapLeaf*> g_pagemap_root[kRootSize];

AM_ALWAYS_INLINE PageMapLeaf* pagemap_leaf(uintptr_t addr) {
  // Masking instead of a range check keeps the fast path short; an address at or
  // above 2^48 cannot be one of ours and is caught by the span validation.
  return g_pagemap_root[(addr >> (kPageShift + kLeafBits)) & (kRootSize - 1)].load(
      std::memory_order_acquire);
}

AM_ALWAYS_INLINE size_t pagemap_slot(uintptr_t addr) { return (addr >> kPageShift) & (kLeafSize - 1); }

inline uint32_t make_small_info(uint32_t size_class, size_t page_offset_bytes) {
  return static_cast<uint32_t>(page_offset_bytes << 8) | size_class;
}

// Span recorded for the page holding addr, or nullptr. The result may be stale
// (a dead or different span): callers validate state and range.
inline Span* pagemap_span(uintptr_t addr) {
  if (addr >> kAddressBits) return nullptr;
  PageMapLeaf* leaf = pagemap_leaf(addr);
  return leaf ? leaf->span[pagemap_slot(addr)] : nullptr;
}
inline Span* pagemap_span_of_page(uintptr_t page) { return pagemap_span(page << kPageShift); }

// --- writers: page-heap lock held ---------------------------------------------
// Makes sure leaves exist for [first_page, first_page + n). False if the OS
// refused memory for a leaf (or the range is past the address space); then
// no entry was written, and the range must not be handed out. Every range
// is ensured whole before any of its entries is set (heap/system_alloc.cc,
// before a region is committed), so the setters below cannot fail.
bool pagemap_ensure(uintptr_t first_page, size_t n);
void pagemap_set_span(uintptr_t page, Span* s);
void pagemap_set_small_info(uintptr_t page, uint32_t info);

}  // namespace am

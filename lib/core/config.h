// Compile-time configuration (meson options feed the AMMALLOC_CFG_* macros).
//
// Owns: page size, the largest small size, and the address-space width the
// pagemap covers. Everything else derives from these.
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef AMMALLOC_CFG_PAGE_SHIFT
#define AMMALLOC_CFG_PAGE_SHIFT 13
#endif

namespace am {

// 8 KiB pages: small enough that a span of a few pages holds 8+ objects of most
// classes, large enough that the pagemap for 48 bits fits a two-level radix tree.
inline constexpr size_t kPageShift = AMMALLOC_CFG_PAGE_SHIFT;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
inline constexpr size_t kPageMask = kPageSize - 1;

// Objects up to 256 KiB come from size classes; larger ones are whole spans.
inline constexpr size_t kMaxSmallSize = 256 * 1024;

// User-space addresses on x86-64 and AArch64 (4-level tables) fit in 48 bits.
inline constexpr size_t kAddressBits = 48;

// Default alignment of malloc, as glibc on x86-64 promises (alignof(max_align_t)).
inline constexpr size_t kDefaultAlign = 16;

// Regions come from the OS in multiples of 2 MiB, 2 MiB-aligned, so that the
// kernel can back them with transparent huge pages.
inline constexpr size_t kRegionAlign = size_t{2} << 20;

inline constexpr size_t pages_for(size_t bytes) { return (bytes + kPageMask) >> kPageShift; }

}  // namespace am

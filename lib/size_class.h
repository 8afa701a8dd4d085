// Size classes: the table of object sizes up to kMaxSmallSize and the O(1)
// lookup from a request size to its class.
//
// Owns: a constexpr table (no run-time initialisation at all), built from one
// rule: 16-byte steps up to 256 B, then 8 classes per doubling up to 256 KiB.
// Class 0 means "not a small object" (pagemap entries of large spans).
//
// Worst-case internal fragmentation (waste / class size):
//  - requests above 256 B: the step is 1/8 of the lower power of two, so a
//    request just above 2^k gets 2^k + 2^k/8: waste < 1/9 = 11.1% of the block.
//  - requests up to 256 B: at most 15 bytes, the 16-byte quantum that the ABI's
//    16-byte alignment forces on every allocator (17 B -> 32 B is the extreme).
// Span tail waste: each class gets the fewest pages whose tail is <= 1/8 of the
// span while holding at least min(8, 256 KiB / size) objects.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/attributes.h"
#include "config.h"

namespace am {

inline constexpr size_t kNumClasses = 97;  // 96 classes + class 0
// One slot per 16 bytes up to 256 KiB: a single table lookup with no branch on
// the size range (16 KiB of table; the slots for sizes up to 1 KiB, where most
// requests fall, share one cache line).
inline constexpr size_t kClassIndexSize = (kMaxSmallSize >> 4) + 1;

struct SizeClassInfo {
  uint32_t size;         // bytes per object
  uint16_t pages;        // pages per span
  uint16_t batch;        // objects moved per thread-cache <-> central transfer
  uint32_t objects;      // objects per span
};

struct SizeClassTable {
  std::array<SizeClassInfo, kNumClasses> info{};
  std::array<uint8_t, kClassIndexSize> index{};
  // ceil(2^64 / size) per class, 0 for class 0: offset % size == 0 <=>
  // offset * m < m (for offset < 2^32); with m == 0 the test always fails, so
  // one comparison also rejects "not a small object". Dense for the free path.
  std::array<uint64_t, kNumClasses> div_magic{};
  // objects * size: offsets at or past it are the span's unused tail, which
  // holds no object even where the offset is a multiple of the size.
  std::array<uint32_t, kNumClasses> span_limit{};
};

constexpr size_t class_index(size_t size) { return (size + 15) >> 4; }

constexpr SizeClassTable build_size_classes() {
  SizeClassTable t{};
  size_t n = 1;
  auto add = [&](size_t size) {
    SizeClassInfo& c = t.info[n++];
    c.size = static_cast<uint32_t>(size);
    size_t min_objs = kMaxSmallSize / size < 8 ? kMaxSmallSize / size : 8;
    if (min_objs == 0) min_objs = 1;
    size_t pages = 1;
    for (;; ++pages) {
      size_t bytes = pages * kPageSize;
      size_t objs = bytes / size;
      if (objs >= min_objs && (bytes - objs * size) * 8 <= bytes) break;
    }
    c.pages = static_cast<uint16_t>(pages);
    c.objects = static_cast<uint32_t>(pages * kPageSize / size);
    size_t batch = (64 * 1024) / size;
    c.batch = static_cast<uint16_t>(batch < 1 ? 1 : batch > 64 ? 64 : batch);
    t.div_magic[n - 1] = ~uint64_t{0} / size + 1;
    t.span_limit[n - 1] = static_cast<uint32_t>(c.objects * size);
  };
  for (size_t s = 16; s <= 256; s += 16) add(s);
  for (size_t base = 256; base < kMaxSmallSize; base *= 2)
    for (size_t s = base + base / 8; s <= base * 2; s += base / 8) add(s);
  // Lookup: the smallest class whose size covers every request of the slot.
  size_t cl = 1;
  for (size_t i = 0; i < kClassIndexSize; ++i) {
    while (t.info[cl].size < (i << 4)) ++cl;
    t.index[i] = static_cast<uint8_t>(cl);
  }
  return t;
}

inline constexpr SizeClassTable kSizeClasses = build_size_classes();

static_assert(kSizeClasses.info[kNumClasses - 1].size == kMaxSmallSize);
static_assert(kSizeClasses.info[kNumClasses - 2].size != 0);

AM_ALWAYS_INLINE uint32_t size_to_class(size_t size) { return kSizeClasses.index[class_index(size)]; }
AM_ALWAYS_INLINE const SizeClassInfo& class_info(uint32_t cl) { return kSizeClasses.info[cl]; }
AM_ALWAYS_INLINE size_t class_size(uint32_t cl) { return kSizeClasses.info[cl].size; }

// Smallest class of at least `size` bytes whose size is a multiple of `align`
// (so every object in a page-aligned span is aligned); 0 if none.
uint32_t size_to_class_aligned(size_t size, size_t align);

}  // namespace am

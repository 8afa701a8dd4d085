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
#include "core/config.h"

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

// The free path's object-start test for one class, one multiply and one compare
// (Lemire et al., "Faster remainder by direct computation", 2019): with
// magic = ceil(2^64 / size) and e = magic * size - 2^64 (mod 2^64, 0 <= e < size),
// an offset x < 2^32 in the span gives q = x * magic (mod 2^64) with
//   q < magic        iff size divides x, and then q = (x / size) * e;
// so for a class with e > 0, q < objects * e holds exactly for the starts of the
// span's objects (the unused tail fails too). A power-of-two size has e == 0:
// every multiple gives q == 0, and the limit stays magic, which is right because
// those spans have no tail (checked below). Class 0 has magic 0 and limit 0, so
// the test also rejects every page that holds no small objects.
struct FreeGate {
  uint64_t magic;
  uint64_t limit;
};

struct SizeClassTable {
  std::array<SizeClassInfo, kNumClasses> info{};
  std::array<uint8_t, kClassIndexSize> index{};
  std::array<FreeGate, kNumClasses> free_gate{};
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
    uint64_t magic = ~uint64_t{0} / size + 1;
    uint64_t e = magic * size;  // wraps: the excess over 2^64
    t.free_gate[n - 1] = {magic, e != 0 ? c.objects * e : magic};
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

// FreeGate's limit for e == 0 assumes no tail: a power-of-two class fills its span.
constexpr bool power_of_two_classes_fill_their_spans() {
  for (size_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& c = kSizeClasses.info[cl];
    bool pow2 = (c.size & (c.size - 1)) == 0;
    if (pow2 && size_t{c.objects} * c.size != size_t{c.pages} * kPageSize) return false;
  }
  return true;
}
static_assert(power_of_two_classes_fill_their_spans());

AM_ALWAYS_INLINE uint32_t size_to_class(size_t size) { return kSizeClasses.index[class_index(size)]; }
AM_ALWAYS_INLINE const SizeClassInfo& class_info(uint32_t cl) { return kSizeClasses.info[cl]; }
AM_ALWAYS_INLINE size_t class_size(uint32_t cl) { return kSizeClasses.info[cl].size; }

// Smallest class of at least `size` bytes whose size is a multiple of `align`
// (so every object in a page-aligned span is aligned); 0 if none.
uint32_t size_to_class_aligned(size_t size, size_t align);

}  // namespace am

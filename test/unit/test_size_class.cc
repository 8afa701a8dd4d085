// Size-class table invariants (lib/core/size_class.h, lib/core/size_class.cc).
//
// Every request size 1..256 KiB maps to the smallest class that holds it; the
// table is strictly increasing in 16-byte multiples up to 256 KiB; the
// fragmentation bounds stated in size_class.h hold; the span geometry (tail
// waste, objects per span) and the FreeGate object-start check (a start of an
// object, not in the span's unused tail) is exact for every offset of every span; the aligned lookup keeps objects aligned.
//
// The loops cover hundreds of thousands of cases, so they count mismatches and
// report the first one instead of running one Catch assertion per case.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/size_class.h"

using namespace am;

namespace {

constexpr uint32_t kLastClass = kNumClasses - 1;

std::string describe(const char* what, size_t a, size_t b) {
  return std::string(what) + " (" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

}  // namespace

TEST_CASE("size classes: table shape", "[size_class]") {
  CHECK(class_size(0) == 0);
  CHECK(class_size(1) == 16);
  CHECK(class_size(kLastClass) == kMaxSmallSize);
  CHECK(kMaxSmallSize == 256 * 1024);
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    INFO("class " << cl << " size " << class_size(cl));
    REQUIRE(class_size(cl) % 16 == 0);
    REQUIRE(class_size(cl) > 0);
    if (cl > 1) REQUIRE(class_size(cl) > class_size(cl - 1));
    const SizeClassInfo& info = class_info(cl);
    REQUIRE(info.pages >= 1);
    REQUIRE(info.batch >= 1);
    REQUIRE(info.batch <= 64);
    REQUIRE(info.objects == info.pages * kPageSize / info.size);
  }
}

TEST_CASE("size classes: every request maps to the smallest class that fits", "[size_class]") {
  size_t bad = 0;
  std::string first;
  for (size_t size = 1; size <= kMaxSmallSize; ++size) {
    uint32_t cl = size_to_class(size);
    bool ok = cl >= 1 && cl < kNumClasses && class_size(cl) >= size && (cl == 1 || class_size(cl - 1) < size);
    if (!ok && bad++ == 0) first = describe("size, class", size, cl);
  }
  INFO("first mismatch: " << first);
  CHECK(bad == 0);
  // malloc(0) gets the smallest class (a unique, freeable pointer).
  CHECK(size_to_class(0) == 1);
}

TEST_CASE("size classes: internal fragmentation", "[size_class]") {
  // Above 256 B the worst request for class c is class_size(c-1) + 1; its waste
  // must be at most 12.5% of the block.
  for (uint32_t cl = 2; cl < kNumClasses; ++cl) {
    size_t size = class_size(cl);
    if (size <= 256) continue;
    size_t worst_request = class_size(cl - 1) + 1;
    size_t waste = size - worst_request;
    INFO("class " << cl << " size " << size << " worst request " << worst_request << " waste " << waste);
    CHECK(waste * 8 <= size);
  }
  // Up to 256 B the waste is below the 16-byte quantum.
  for (size_t size = 1; size <= 256; ++size) {
    INFO("size " << size);
    CHECK(class_size(size_to_class(size)) - size < 16);
  }
}

TEST_CASE("size classes: span geometry", "[size_class]") {
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& info = class_info(cl);
    size_t span = static_cast<size_t>(info.pages) * kPageSize;
    size_t tail = span - static_cast<size_t>(info.objects) * info.size;
    size_t min_objs = kMaxSmallSize / info.size < 8 ? kMaxSmallSize / info.size : 8;
    INFO("class " << cl << " size " << info.size << " pages " << info.pages << " objects " << info.objects
                  << " tail " << tail);
    CHECK(tail < info.size);
    CHECK(tail * 8 <= span);
    CHECK(info.objects >= min_objs);
    CHECK(info.objects >= 1);
    // The fewest pages that satisfy both rules: one page less must break one.
    if (info.pages > 1) {
      size_t smaller = span - kPageSize;
      size_t objs = smaller / info.size;
      size_t smaller_tail = smaller - objs * info.size;
      CHECK((objs < min_objs || smaller_tail * 8 > smaller));
    }
    // The pagemap's small info keeps the page offset in 24 bits.
    CHECK(span < (size_t{1} << 24));
  }
}

TEST_CASE("size classes: the free gate accepts exactly the object starts of every span", "[size_class]") {
  size_t bad = 0;
  std::string first;
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& info = class_info(cl);
    const FreeGate g = kSizeClasses.free_gate[cl];
    const uint64_t span = static_cast<uint64_t>(info.pages) * kPageSize;
    for (uint64_t offset = 0; offset < span; ++offset) {
      // An object starts here: a multiple of the size, before the unused tail.
      bool is_start = offset % info.size == 0 && offset / info.size < info.objects;
      bool gate = offset * g.magic < g.limit;
      if (is_start != gate && bad++ == 0) first = describe("class, offset", cl, offset);
    }
  }
  INFO("first mismatch: " << first);
  CHECK(bad == 0);
  // Class 0 (large spans and unused pages) has magic 0 and limit 0, so the
  // test fails for every offset and such pages always take the slow path.
  const FreeGate g0 = kSizeClasses.free_gate[0];
  CHECK(g0.magic == 0);
  CHECK(g0.limit == 0);
  for (uint64_t offset : {uint64_t{0}, uint64_t{16}, uint64_t{8191}}) CHECK_FALSE(offset * g0.magic < g0.limit);
}

TEST_CASE("size classes: aligned lookup", "[size_class]") {
  size_t bad = 0;
  std::string first;
  for (size_t align = 16; align <= kPageSize; align *= 2) {
    // Reference: smallest class >= size that is a multiple of align.
    for (size_t size = 1; size <= kMaxSmallSize; ++size) {
      uint32_t cl = size_to_class_aligned(size, align);
      uint32_t want = 0;
      for (uint32_t c = size_to_class(size); c < kNumClasses; ++c) {
        if (class_size(c) % align == 0) {
          want = c;
          break;
        }
      }
      bool ok = cl != 0 && cl == want && class_size(cl) % align == 0 && class_size(cl) >= size;
      if (!ok && bad++ == 0) first = describe("align, size", align, size) + " -> class " + std::to_string(cl);
      // Every size has a class: 256 KiB is a multiple of every alignment up to a page.
    }
  }
  INFO("first mismatch: " << first);
  CHECK(bad == 0);
  CHECK(size_to_class_aligned(100, kPageSize * 2) == 0);
  CHECK(size_to_class_aligned(kMaxSmallSize + 1, 16) == 0);
  CHECK(class_size(size_to_class_aligned(1, 4096)) == 4096);
}

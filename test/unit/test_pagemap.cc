// PageMap (lib/core/pagemap.h): page number -> span, and the small info that lets
// free() find the size class and check object starts without the span.
//
// Spans come from the page heap (the only writer). The page heap is a
// process-wide singleton; these tests only look at spans they allocated.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "front/alloc_fast.h"
#include "heap/page_heap.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "core/span.h"

using namespace am;

namespace {

uint32_t small_info_at(uintptr_t addr) {
  PageMapLeaf* leaf = pagemap_leaf(addr);
  REQUIRE(leaf != nullptr);
  return leaf->small_info[pagemap_slot(addr)];
}

int g_global_in_bss;

}  // namespace

TEST_CASE("pagemap: small info encoding", "[pagemap]") {
  CHECK(make_small_info(5, 0) == 5u);
  CHECK(make_small_info(96, 3 * kPageSize) == ((3u * kPageSize) << 8 | 96u));
  uint32_t info = make_small_info(17, 255 * kPageSize);
  CHECK((info & 0xff) == 17u);
  CHECK((info >> 8) == 255 * kPageSize);
}

TEST_CASE("pagemap: every page of a small span maps to it, with class and offset", "[pagemap]") {
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& info = class_info(cl);
    Span* s = page_heap_alloc_small(cl);
    REQUIRE(s != nullptr);
    INFO("class " << cl << " size " << info.size << " pages " << info.pages);
    REQUIRE(s->state == Span::kSmall);
    REQUIRE(s->size_class == cl);
    REQUIRE(s->num_pages == info.pages);
    REQUIRE(s->start() % kPageSize == 0);
    for (size_t i = 0; i < s->num_pages; ++i) {
      uintptr_t page = s->start() + i * kPageSize;
      // Any address inside the page, not just its start.
      for (uintptr_t a : {page, page + 1, page + kPageSize / 2, page + kPageSize - 1}) {
        REQUIRE(pagemap_span(a) == s);
        uint32_t si = small_info_at(a);
        REQUIRE((si & 0xff) == cl);
        REQUIRE((si >> 8) == i * kPageSize);
      }
      REQUIRE(pagemap_span_of_page(s->first_page + i) == s);
    }
    // The fast path's class lookup: object starts give the class, interior
    // addresses give 0.
    for (uint32_t k = 0; k < info.objects; k += (info.objects > 64 ? info.objects / 64 : 1)) {
      uintptr_t obj = s->start() + static_cast<uintptr_t>(k) * info.size;
      REQUIRE(small_class_of(reinterpret_cast<void*>(obj)) == cl);
      REQUIRE(small_class_of(reinterpret_cast<void*>(obj + 8)) == 0);
      REQUIRE(small_class_of(reinterpret_cast<void*>(obj + info.size - 8)) == 0);
    }
    page_heap_free_small(s);
  }
}

TEST_CASE("pagemap: small info is cleared when a small span is freed", "[pagemap]") {
  uint32_t cl = size_to_class(3000);
  Span* s = page_heap_alloc_small(cl);
  REQUIRE(s != nullptr);
  uintptr_t start = s->start();
  size_t pages = s->num_pages;
  page_heap_free_small(s);
  for (size_t i = 0; i < pages; ++i) {
    INFO("page " << i);
    CHECK(small_info_at(start + i * kPageSize) == 0);
    CHECK(small_class_of(reinterpret_cast<void*>(start + i * kPageSize)) == 0);
  }
}

TEST_CASE("pagemap: a large span maps its first and last pages", "[pagemap]") {
  for (size_t pages : {size_t{1}, size_t{2}, size_t{5}, size_t{130}, size_t{1000}}) {
    INFO("pages " << pages);
    bool zeroed = false;
    Span* s = page_heap_alloc_large(pages, 1, &zeroed);
    REQUIRE(s != nullptr);
    REQUIRE(s->state == Span::kLarge);
    REQUIRE(s->num_pages == pages);
    uintptr_t first = s->start();
    uintptr_t last = s->start() + (pages - 1) * kPageSize;
    CHECK(pagemap_span(first) == s);
    CHECK(pagemap_span(first + kPageSize - 1) == s);
    CHECK(pagemap_span(last) == s);
    CHECK(pagemap_span(last + 123) == s);
    CHECK(pagemap_span_of_page(s->first_page) == s);
    CHECK(pagemap_span_of_page(s->last_page()) == s);
    // Large pages never carry small info: free() must not take them for objects.
    CHECK(small_info_at(first) == 0);
    CHECK(small_info_at(last) == 0);
    CHECK(small_class_of(reinterpret_cast<void*>(first)) == 0);
    page_heap_free_large(s);
  }
}

TEST_CASE("pagemap: addresses never handed out map to nothing", "[pagemap]") {
  // Make sure the pagemap has at least one leaf.
  bool zeroed;
  Span* s = page_heap_alloc_large(1, 1, &zeroed);
  REQUIRE(s != nullptr);

  int on_stack = 0;
  void* from_libc = malloc(64);
  REQUIRE(from_libc != nullptr);
  for (uintptr_t a : {uintptr_t{0}, uintptr_t{1}, uintptr_t{4096}, reinterpret_cast<uintptr_t>(&on_stack),
                      reinterpret_cast<uintptr_t>(&g_global_in_bss), reinterpret_cast<uintptr_t>(from_libc),
                      reinterpret_cast<uintptr_t>(&small_info_at)}) {
    INFO("address " << std::hex << a);
    CHECK(pagemap_span(a) == nullptr);
    CHECK(small_class_of(reinterpret_cast<void*>(a)) == 0);
  }
  free(from_libc);
  page_heap_free_large(s);
}

TEST_CASE("pagemap: addresses at or above 2^48 map to nothing", "[pagemap]") {
  bool zeroed;
  Span* s = page_heap_alloc_large(2, 1, &zeroed);
  REQUIRE(s != nullptr);
  uintptr_t a = s->start();
  REQUIRE(pagemap_span(a) == s);
  // The same low 48 bits as a real span: a masked lookup would alias it.
  for (uintptr_t high : {uintptr_t{1} << 48, uintptr_t{1} << 52, uintptr_t{1} << 63, ~uintptr_t{0} << 48}) {
    INFO("address " << std::hex << (a | high));
    CHECK(pagemap_span(a | high) == nullptr);
  }
  CHECK(pagemap_span(~uintptr_t{0}) == nullptr);
  CHECK(pagemap_span(uintptr_t{1} << 48) == nullptr);
  page_heap_free_large(s);
}

TEST_CASE("pagemap: pagemap_ensure covers leaf boundaries", "[pagemap]") {
  // A range that straddles two leaves gets both; addresses beyond 2^48 are refused.
  uintptr_t leaf_pages = kLeafSize;
  uintptr_t first = (uintptr_t{1} << (kPageNumBits - 1)) - 2;  // high in the address space, unused
  CHECK(first % leaf_pages == leaf_pages - 2);
  // Not calling pagemap_ensure on arbitrary ranges here would leave this
  // untested; it maps 2 leaves of metadata (6 MiB virtual, untouched).
  REQUIRE(pagemap_ensure(first, 4));
  CHECK(pagemap_leaf(first << kPageShift) != nullptr);
  CHECK(pagemap_leaf((first + 3) << kPageShift) != nullptr);
  CHECK(pagemap_span_of_page(first) == nullptr);
  CHECK(pagemap_span_of_page(first + 3) == nullptr);
  CHECK_FALSE(pagemap_ensure((uintptr_t{1} << kPageNumBits) - 1, 2));
}

// PageMap writers (readers are inline in pagemap.h).
#include "core/pagemap.h"

#include "core/meta_arena.h"

namespace am {

constinit std::atomic<PageMapLeaf*> g_pagemap_root[kRootSize] = {};

bool pagemap_ensure(uintptr_t first_page, size_t n) {
  uintptr_t last = first_page + n - 1;
  if (last < first_page || (last >> kLeafBits) >= kRootSize) return false;
  for (uintptr_t i = first_page >> kLeafBits; i <= (last >> kLeafBits); ++i) {
    if (g_pagemap_root[i].load(std::memory_order_relaxed) == nullptr) {
      // Refused: the leaves made before this one stay (empty: every entry
      // null, which every reader takes as "not ours"), used when the range
      // comes again.
      auto* leaf = static_cast<PageMapLeaf*>(meta_alloc_pages(sizeof(PageMapLeaf)));
      if (leaf == nullptr) return false;
      g_pagemap_root[i].store(leaf, std::memory_order_release);
    }
  }
  return true;
}

void pagemap_set_span(uintptr_t page, Span* s) {
  pagemap_leaf(page << kPageShift)->span[page & (kLeafSize - 1)] = s;
}

void pagemap_set_small_info(uintptr_t page, uint32_t info) {
  pagemap_leaf(page << kPageShift)->small_info[page & (kLeafSize - 1)] = info;
}

}  // namespace am

// Aligned size-class lookup (the plain lookup is constexpr in size_class.h).
#include "core/size_class.h"

namespace am {

uint32_t size_to_class_aligned(size_t size, size_t align) {
  // Objects sit at span_start + k*size with span_start page-aligned, so only a
  // class size that is a multiple of align (<= page size) keeps every object
  // aligned. Power-of-two classes always qualify, so this ends quickly.
  if (align > kPageSize || size > kMaxSmallSize) return 0;
  if (size < align) size = align;
  for (uint32_t cl = size_to_class(size); cl < kNumClasses; ++cl)
    if (class_size(cl) % align == 0) return cl;
  return 0;
}

}  // namespace am

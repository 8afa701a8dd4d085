// Cold allocation paths: large objects, aligned requests, and free() of anything
// the fast path could not place (NULL, large spans, invalid pointers).
#include <errno.h>

#include "alloc_fast.h"
#include "alloc_slow.h"
#include "base/log.h"
#include "globals.h"
#include "background.h"
#include "memory_limit.h"
#include "page_heap.h"

namespace am {

namespace {

struct LargeRequest {
  size_t pages;
  size_t align_pages;
  bool zeroed;
};

void* try_large(void* arg) {
  auto* r = static_cast<LargeRequest*>(arg);
  Span* s = page_heap_alloc_large(r->pages, r->align_pages, &r->zeroed);
  return s ? reinterpret_cast<void*>(s->start()) : nullptr;
}

}  // namespace

void* alloc_large_zeroed(size_t size, size_t align, bool* zeroed) {
  ensure_initialized();
  // Beyond half the address space no request can succeed; saying so early
  // also keeps the page arithmetic below from overflowing.
  if (size > kMaxRequest || align > kMaxRequest) {
    errno = ENOMEM;
    return nullptr;
  }
  LargeRequest r{pages_for(size == 0 ? 1 : size), align > kPageSize ? align >> kPageShift : 1, false};
  void* p = try_large(&r);
  if (p == nullptr && page_heap_limit_hit()) p = memory_limit_retry(r.pages << kPageShift, try_large, &r);
  if (p == nullptr) errno = ENOMEM;
  *zeroed = r.zeroed;
  background_poke();
  return p;
}

void* alloc_large(size_t size, size_t align) {
  bool zeroed;
  return alloc_large_zeroed(size, align, &zeroed);
}

void* alloc_aligned(size_t size, size_t align) {
  if (align <= kDefaultAlign) return alloc_fast(size);
  if (size <= kMaxSmallSize && align <= kPageSize) {
    if (uint32_t cl = size_to_class_aligned(size, align)) return alloc_class(cl);
  }
  return alloc_large(size, align);
}

Span* large_span_of(void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Span* s = pagemap_span(a);
  if (s != nullptr && s->state == Span::kLarge && s->start() == a) return s;
  return nullptr;
}

AM_NORETURN void fatal_bad_pointer(void* p, const char* function) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Span* s = pagemap_span(a);
  bool freed = s != nullptr && s->state == Span::kFree && s->contains_page(a >> kPageShift);
  if (freed && function[0] == 'f') fatal_double_free(function, p);  // free, free_sized
  fatal_invalid_pointer(function, p);
}

void free_slow(void* p, const char* function) {
  if (p == nullptr) return;
  if (Span* s = large_span_of(p)) {
    page_heap_free_large(s);
    return;
  }
  fatal_bad_pointer(p, function);
}

size_t usable_size(void* p, const char* function) {
  if (p == nullptr) return 0;
  if (uint32_t cl = small_class_of(p)) return class_size(cl);
  if (Span* s = large_span_of(p)) return s->bytes();
  fatal_bad_pointer(p, function);
}

}  // namespace am

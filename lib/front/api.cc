// The am_* C API: the malloc family with glibc's contract, on top of the fast
// path (alloc_fast.h) and the cold paths (alloc_slow.cc).
#include <errno.h>
#include <string.h>

#include "front/alloc_fast.h"
#include "front/alloc_slow.h"
#include "ammalloc/ammalloc.h"
#include "base/log.h"
#include "policy/background.h"
#include "heap/central_cache.h"
#include "front/init.h"
#include "front/harden.h"
#include "observe/observers.h"
#include "policy/memory_limit.h"
#include "core/options.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "heap/thread_cache.h"
#include "policy/thread_cache_gc.h"
#include "heap/transfer_cache.h"

using namespace am;

namespace {

constexpr size_t kOsPage = 4096;  // valloc/pvalloc use the OS page, as glibc does

// C23 free_sized: `size` must be what the block was allocated (or last
// reallocated) with. The sizes that can have produced a block of usable size U:
// more than the next smaller class (malloc picks the smallest class that fits;
// for a large block: more than the largest small size), or at least U/2
// (realloc keeps a block in place down to half of it). An aligned allocation
// may sit in a much larger class, so for free_aligned_sized only the upper
// bound holds, as for a sampled object (a span of its own whatever its size). A size outside these bounds means the
// caller's bookkeeping and ours disagree about the block: invalid pointer.
bool sized_free_plausible(void* ptr, size_t size, bool aligned) {
  if (ptr == nullptr) return true;
  size_t usable, next_smaller;
  if (uint32_t cl = small_class_of(ptr)) {
    usable = class_size(cl);
    next_smaller = class_size(cl - 1);  // class 0 has size 0
  } else if (Span* s = large_span_of(ptr)) {
    // The page heap may hand out a span a little longer than asked for (a
    // remainder too small to split off), so the request is only known to have
    // been large: above the small sizes. A sampled object has a span whatever
    // its size.
    usable = s->usable_bytes();
    next_smaller = s->sampled ? 0 : kMaxSmallSize;
  } else {
    return true;  // not ours at all: free reports it
  }
  if (size > usable) return false;
  if (aligned) return true;
  // (next_smaller == 0: the smallest class also serves malloc(0).)
  return size > next_smaller || next_smaller == 0 || size >= usable / 2;
}

bool is_power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

size_t round_up_power_of_two(size_t x) {
  if (x <= 1) return 1;
  if (x > (size_t{1} << 63)) return 0;
  return size_t{1} << (64 - __builtin_clzl(x - 1));
}

}  // namespace

extern "C" {

AM_EXPORT void* am_malloc(size_t size) { return alloc_fast(size, AM_API_MALLOC); }

AM_EXPORT void am_free(void* ptr) { free_fast(ptr, AM_API_FREE); }

AM_EXPORT void am_free_sized(void* ptr, size_t size) {
  if (!sized_free_plausible(ptr, size, /*aligned=*/false)) fatal_invalid_pointer("free_sized", ptr);
  free_fast(ptr, AM_API_FREE_SIZED);
}

AM_EXPORT void am_free_aligned_sized(void* ptr, size_t alignment, size_t size) {
  (void)alignment;
  if (!sized_free_plausible(ptr, size, /*aligned=*/true)) fatal_invalid_pointer("free_aligned_sized", ptr);
  free_fast(ptr, AM_API_FREE_SIZED);
}

AM_EXPORT void* am_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (total <= kMaxSmallSize) {
    void* p = alloc_fast(total, AM_API_CALLOC);
    if (p) memset(p, 0, total);
    return p;
  }
  bool zeroed = false;
  void* p = alloc_large_zeroed(total, kPageSize, &zeroed, AM_API_CALLOC);
  if (p && !zeroed) memset(p, 0, total);
  return p;
}

// Hooks see realloc as a free of the old block and an alloc of the new one, both
// AM_API_REALLOC (ammalloc.h). Moving: the inner alloc and free report
// themselves (alloc first). In place: reported here, free first.
AM_EXPORT void* am_realloc(void* ptr, size_t size) {
  if (ptr == nullptr) return alloc_fast(size, AM_API_REALLOC);
  if (size == 0) {  // glibc frees and returns NULL
    free_fast(ptr, AM_API_REALLOC);
    return nullptr;
  }
  size_t old = usable_size(ptr, "realloc");
  if (AM_UNLIKELY(harden_on())) harden_check_live(ptr, AM_API_REALLOC);
  // Keep the block when the new size fits without wasting more than half of it,
  // and a large block that stays large: it shrinks or grows in place when the
  // pages after it are free (a growing buffer would otherwise be copied at
  // every step: 4,096 moves for 64 KiB steps to 256 MiB).
  bool in_place = size <= old && size >= old / 2;
  if (!in_place && size > kMaxSmallSize && old > kMaxSmallSize && size <= kMaxRequest) {
    if (Span* s = large_span_of(ptr)) in_place = page_heap_resize_large(s, pages_for(size));
  }
  if (in_place) {
    // A freed block kept "in place" would be live and on a free list at once.
    if (uint32_t cl = old <= kMaxSmallSize ? small_class_of(ptr) : 0; cl && small_freed_at_head(ptr, cl))
      fatal_double_free("realloc", ptr);
    if (AM_UNLIKELY(observed())) observe_realloc_in_place(ptr, old, size);
    return ptr;
  }
  const bool growing_large = size > old && old > kMaxSmallSize && size <= kMaxRequest;
  void* q = growing_large ? alloc_large_growing(size, AM_API_REALLOC) : alloc_fast(size, AM_API_REALLOC);
  if (q == nullptr) return nullptr;  // errno is ENOMEM; ptr is untouched
  memcpy(q, ptr, old < size ? old : size);
  free_fast(ptr, AM_API_REALLOC);
  return q;
}

AM_EXPORT void* am_reallocarray(void* ptr, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return am_realloc(ptr, total);
}

AM_EXPORT void* am_memalign(size_t alignment, size_t size) {
  // glibc rounds a non-power-of-two alignment up to the next power of two.
  size_t align = round_up_power_of_two(alignment);
  if (align == 0) {
    errno = EINVAL;
    return nullptr;
  }
  return alloc_aligned(size, align, AM_API_MEMALIGN);
}

AM_EXPORT int am_posix_memalign(void** out, size_t alignment, size_t size) {
  if (!is_power_of_two(alignment) || alignment % sizeof(void*) != 0) return EINVAL;
  int saved = errno;
  void* p = alloc_aligned(size, alignment, AM_API_POSIX_MEMALIGN);
  if (p == nullptr) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

AM_EXPORT void* am_aligned_alloc(size_t alignment, size_t size) {
  if (!is_power_of_two(alignment)) {
    errno = EINVAL;
    return nullptr;
  }
  return alloc_aligned(size, alignment, AM_API_ALIGNED_ALLOC);
}

AM_EXPORT void* am_valloc(size_t size) { return alloc_aligned(size, kOsPage, AM_API_VALLOC); }

AM_EXPORT void* am_pvalloc(size_t size) {
  size_t rounded = (size + kOsPage - 1) & ~(kOsPage - 1);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return alloc_aligned(rounded == 0 ? kOsPage : rounded, kOsPage, AM_API_PVALLOC);
}

AM_EXPORT size_t am_malloc_usable_size(void* ptr) { return usable_size(ptr, "malloc_usable_size"); }

AM_EXPORT size_t am_release_free_memory(void) {
  // Batches parked in the transfer cache pin their spans: hand them back first
  // so every span that is really free reaches the page heap.
  transfer_cache_drain_all();
  return page_heap_release_all();
}

AM_EXPORT int am_malloc_trim(size_t pad) {
  (void)pad;  // every free page is released; keeping `pad` bytes is moot with spans
  return am_release_free_memory() > 0 ? 1 : 0;
}

AM_EXPORT int am_mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}

AM_EXPORT void am_thread_cache_flush(void) { thread_cache_flush_self(); }

AM_EXPORT void am_reset(void) {
  ensure_initialized();
  thread_cache_gc(os::now_ns(), 0, /*force=*/true);
  transfer_cache_drain_all();  // after the caches: their batches could not go there
  page_heap_release_all();
  page_heap_reset_peaks();
  central_reset_counters();
  transfer_cache_reset_counters();
  thread_cache_gc_reset_counters();
  background_reset_counters();
}

AM_EXPORT void am_set_memory_limit(size_t bytes, am_memory_limit_fn callback, void* ctx) {
  ensure_initialized();
  memory_limit_set(bytes, callback, ctx);
}

AM_EXPORT void am_memory_usage(size_t* current, size_t* peak) {
  if (current) *current = page_heap_resident_bytes();
  if (peak) *peak = page_heap_resident_peak();
}

AM_EXPORT void am_reset_peak_memory(void) { page_heap_reset_peaks(); }

AM_EXPORT int am_option_get(const char* name, long long* value) {
  ensure_initialized();
  int i = option_find(name);
  if (i < 0 || value == nullptr) return 0;
  *value = option(static_cast<OptionId>(i));
  return 1;
}

AM_EXPORT int am_option_set(const char* name, long long value) {
  ensure_initialized();
  int rc = option_set(name, value);
  // Turning the scavenger or the GC on must not wait for the next allocation.
  background_want();
  background_poke();
  return rc;
}

// The version this library was built with (<ammalloc/version.h>, from the
// project version in meson.build).
AM_EXPORT const char* am_version(void) { return AMMALLOC_VERSION; }

}  // extern "C"

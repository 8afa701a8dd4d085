// Cold allocation paths: large objects, aligned requests, sampled objects, the
// misses of the small fast paths, and free() of anything the fast path could
// not place (NULL, large spans, invalid pointers).
//
// Every function here that a sampled or observed allocation passes through is
// in the entry section (AM_ENTRY_SECTION, declared so in alloc_fast.h), so
// captured stacks start at the program's frame (stacktrace.h).
//
// Observability enters here and only here:
//  - hooks and the heap checker (hooks.h): while anything observes, every
//    thread is in bypass mode, so every operation reaches one of these paths,
//    which call observe_* around the real work;
//  - sampling (sampler.h): the countdown ran out (alloc_sample_due from the
//    fast path; alloc_aligned and large requests count down here). A sampled
//    object gets a span of its own (whole pages, aligned as asked), marked
//    `sampled` with its profile bucket; its free comes here (the pagemap says
//    class 0) and updates the bucket in O(1). The free fast path is untouched.
//  - pending signal work (stats_signal.h) and profiler on/off (the sampler's
//    generation) are checked at every miss, where no allocator lock is held.
#include <errno.h>

#include "front/alloc_fast.h"
#include "front/alloc_slow.h"
#include "base/log.h"
#include "front/init.h"
#include "front/harden.h"
#include "policy/background.h"
#include "observe/hooks.h"
#include "policy/memory_limit.h"
#include "core/options.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "observe/profiler.h"
#include "observe/sampler.h"
#include "observe/stats_signal.h"

namespace am {

namespace {

struct LargeRequest {
  size_t pages;
  size_t align_pages;
  bool zeroed;
};

void* try_large(void* arg) {
  auto* r = static_cast<LargeRequest*>(arg);
  return page_heap_alloc_large(r->pages, r->align_pages, &r->zeroed);
}

// Guard pages (AMMALLOC_GUARD_PAGES): the span has one page more than the
// object needs, and that last page is made inaccessible, so a linear overrun
// faults at once. Where mprotect fails (the map count limit: each guard splits
// a mapping in three), the span simply has no guard.
void add_guard_page(Span* s) {
  s->guard = os::protect(reinterpret_cast<void*>(s->start() + s->bytes() - kPageSize), kPageSize, false);
}
void remove_guard_page(Span* s) {
  if (!s->guard) return;
  os::protect(reinterpret_cast<void*>(s->start() + s->bytes() - kPageSize), kPageSize, true);
  s->guard = false;
}

// A span for one object of `size` bytes aligned to `align` (>= 1 page of
// alignment always); the memory-limit sequence on failure; NULL + ENOMEM.
Span* large_span(size_t size, size_t align, bool* zeroed) {
  const bool guard = option(kOptGuardPages) != 0;
  LargeRequest r{pages_for(size == 0 ? 1 : size) + (guard ? 1 : 0), align > kPageSize ? align >> kPageShift : 1, false};
  auto* s = static_cast<Span*>(try_large(&r));
  if (s == nullptr && page_heap_limit_hit())
    s = static_cast<Span*>(memory_limit_retry(r.pages << kPageShift, try_large, &r));
  if (s == nullptr) errno = ENOMEM;
  if (s != nullptr && guard) add_guard_page(s);
  *zeroed = r.zeroed;
  background_poke();
  return s;
}

// Work every miss checks first: profiler started or stopped since this thread
// armed its countdown, and what a signal handler could not do itself.
AM_ALWAYS_INLINE void miss_checks() {
  sampler_check_generation();
  signals_poll();
}

// A sampled object: its own span, recorded by the profiler.
AM_NOINLINE AM_ENTRY_SECTION void* alloc_sampled(size_t size, size_t align, bool* zeroed, Api api) {
  bool obs = observed();
  if (obs) observe_pre_alloc(size, api);
  Span* s = large_span(size, align, zeroed);
  void* p = nullptr;
  if (s != nullptr) {
    profiler_record_alloc(s, size);
    p = reinterpret_cast<void*>(s->start());
  }
  if (obs) observe_post_alloc(p, size, api);
  return p;
}

}  // namespace

void* alloc_large_zeroed(size_t size, size_t align, bool* zeroed, Api api) {
  ensure_initialized();
  miss_checks();
  // Beyond half the address space no request can succeed; saying so early
  // also keeps the page arithmetic below from overflowing.
  if (size > kMaxRequest || align > kMaxRequest) {
    if (observed()) {
      observe_pre_alloc(size, api);
      observe_post_alloc(nullptr, size, api);
    }
    errno = ENOMEM;
    *zeroed = false;
    return nullptr;
  }
  if (AM_UNLIKELY(sample_countdown(tls_cache, size)) && sampler_take(size))
    return alloc_sampled(size, align, zeroed, api);
  bool obs = observed();
  if (obs) observe_pre_alloc(size, api);
  Span* s = large_span(size, align, zeroed);
  void* p = s ? reinterpret_cast<void*>(s->start()) : nullptr;
  if (obs) observe_post_alloc(p, size, api);
  return p;
}

void* alloc_large(size_t size, size_t align, Api api) {
  bool zeroed;
  return alloc_large_zeroed(size, align, &zeroed, api);
}

void* alloc_sample_due(size_t size, Api api) {
  if (sampler_take(size)) {
    bool zeroed;
    return alloc_sampled(size, kDefaultAlign, &zeroed, api);
  }
  return alloc_small_routed(tls_cache, size, api);
}

void* alloc_small_miss(uint32_t cl, size_t size, Api api) {
  miss_checks();
  if (AM_LIKELY(!observed())) return thread_cache_alloc_slow(cl);
  observe_pre_alloc(size, api);
  void* p = thread_cache_alloc_slow(cl);
  observe_post_alloc(p, size, api);
  return p;
}

void* alloc_size_miss(size_t size, Api api) {
  uint32_t cl = route_class(size);
  // Class 0 is hardening's route (harden.h): the real class, checked path.
  if (AM_UNLIKELY(cl == 0)) return harden_alloc_class(size_to_class(size), size, api);
  return alloc_small_miss(cl, size, api);
}

void free_ptr_miss(void* p, Api api) { free_small_miss(p, small_class_of(p), api); }

void free_small_miss(void* p, uint32_t cl, Api api) {
  miss_checks();
  if (AM_LIKELY(!observed())) return thread_cache_free_slow(p, cl);
  size_t usable = class_size(cl);
  observe_pre_free(p, usable, api);
  thread_cache_free_slow(p, cl);
  observe_post_free(p, usable, api);
}

void* alloc_aligned(size_t size, size_t align, Api api) {
  if (align <= kDefaultAlign) return alloc_fast(size, api);
  if (size <= kMaxSmallSize && align <= kPageSize) {
    if (uint32_t cl = size_to_class_aligned(size, align)) {
      if (AM_UNLIKELY(sample_countdown(tls_cache, size)) && sampler_take(size)) {
        bool zeroed;
        return alloc_sampled(size, align, &zeroed, api);
      }
      if (AM_UNLIKELY(harden_on())) return harden_alloc_class(cl, size, api);
      return alloc_class(cl, size, api);
    }
  }
  return alloc_large(size, align, api);
}

Span* large_span_of(void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Span* s = pagemap_span(a);
  if (s != nullptr && s->state == Span::kLarge && s->start() == a) return s;
  return nullptr;
}

AM_NORETURN void fatal_bad_pointer(void* p, const char* function, bool freeing) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Span* s = pagemap_span(a);
  bool freed = s != nullptr && s->state == Span::kFree && s->contains_page(a >> kPageShift);
  if (freed && freeing) fatal_double_free(function, p);
  fatal_invalid_pointer(function, p);
}

void free_slow(void* p, Api api) {
  if (p == nullptr) return;
  miss_checks();
  if (Span* s = large_span_of(p)) {
    bool obs = observed();
    size_t usable = s->usable_bytes();
    if (obs) observe_pre_free(p, usable, api);
    if (s->sampled) profiler_record_free(s);
    remove_guard_page(s);
    page_heap_free_large(s);
    if (obs) observe_post_free(p, usable, api);
    return;
  }
  fatal_bad_pointer(p, am_api_name(api), /*freeing=*/true);
}

size_t usable_size(void* p, const char* function) {
  if (p == nullptr) return 0;
  if (uint32_t cl = small_class_of(p)) return class_size(cl);
  if (Span* s = large_span_of(p)) return s->usable_bytes();
  fatal_bad_pointer(p, function);
}

}  // namespace am

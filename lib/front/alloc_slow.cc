// Cold allocation paths: the fast path's two misses (alloc_miss, free_miss),
// large objects, aligned requests, sampled objects, and free() of anything the
// fast path could not place (NULL, large spans, invalid pointers).
//
// Every function here that a sampled or observed allocation passes through is
// in the entry section (AM_ENTRY_SECTION, declared so in alloc_fast.h), so
// captured stacks start at the program's frame (observe/stacktrace.h).
//
// The order of work for one operation, written once here:
//   1. miss_checks(): profiler started or stopped (the sampler's generation),
//      signal work a handler could not do itself (observe/stats_signal.h);
//   2. the observers (hooks, and the leak checker registered among them:
//      observe/observers.h) once before and once after, by observed_alloc and
//      observed_free: while anything observes, every thread is in bypass mode,
//      so every operation reaches this file;
//   3. the tier that serves it (heap/thread_cache.h for small objects,
//      heap/page_heap.h for large ones); when the memory limit stopped it, a
//      heap profile (observe/profiler.h) and the memory-limit policy
//      (policy/memory_limit.h); then NULL + ENOMEM;
//   4. the background thread is poked (policy/background.h) where no lock is held.
// Sampling (observe/sampler.h): the countdown ran out (alloc_miss from the fast
// path; aligned and large requests count down here). A sampled object gets a
// span of its own (whole pages, aligned as asked), marked `sampled` with its
// profile bucket; its free comes here (the pagemap says class 0) and updates
// the bucket in O(1). The free fast path is untouched.
#include <errno.h>

#include "base/log.h"
#include "core/options.h"
#include "front/alloc_fast.h"
#include "front/alloc_slow.h"
#include "front/harden.h"
#include "front/init.h"
#include "heap/page_heap.h"
#include "heap/system_alloc.h"
#include "observe/observers.h"
#include "observe/profiler.h"
#include "observe/sampler.h"
#include "observe/stats_signal.h"
#include "os/os.h"
#include "policy/background.h"
#include "policy/memory_limit.h"

namespace am {

namespace {

struct LargeRequest {
  size_t pages;
  size_t align_pages;
  bool zeroed;
  size_t room_pages = 0;
};

void* try_large(void* arg, HeapStatus* status) {
  auto* r = static_cast<LargeRequest*>(arg);
  return page_heap_alloc_large(r->pages, r->align_pages, &r->zeroed, status, r->room_pages);
}

// Guard pages (AMMALLOC_GUARD_PAGES): the span has one page more than the
// object needs, and that last page is made inaccessible, so a linear overrun
// faults at once (heap/system_alloc.h: MADV_GUARD_INSTALL, else mprotect
// within a budget of mappings); where none is placed the span has no guard.
void add_guard_page(Span* s) {
  s->guard = system_guard_page(s->start() + s->bytes() - kPageSize, true);
}
void remove_guard_page(Span* s) {
  if (!s->guard) return;
  system_guard_page(s->start() + s->bytes() - kPageSize, false);
  s->guard = false;
}

// A span for one object of `size` bytes aligned to `align` (>= 1 page of
// alignment always); the memory-limit sequence on failure; NULL + ENOMEM.
// With `room`, first a span with room to grow after it (a growing realloc:
// alloc_large_growing), without the memory-limit sequence: at the limit the
// room is simply not had.
Span* large_span(size_t size, size_t align, bool* zeroed, bool room = false) {
  const bool guard = option(kOptGuardPages) != 0;
  LargeRequest r{pages_for(size == 0 ? 1 : size) + (guard ? 1 : 0), align > kPageSize ? align >> kPageShift : 1, false};
  HeapStatus status = HeapStatus::kOk;
  Span* s = nullptr;
  if (room && !guard) {
    LargeRequest roomy = r;
    roomy.room_pages = r.pages / 2;
    s = static_cast<Span*>(try_large(&roomy, &status));
    r.zeroed = roomy.zeroed;
  }
  if (s == nullptr) s = static_cast<Span*>(try_large(&r, &status));
  if (s == nullptr && status == HeapStatus::kLimit) {
    profiler_on_memory_limit();
    s = static_cast<Span*>(memory_limit_retry(r.pages << kPageShift, try_large, &r));
  }
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

// The observers around one allocation or free: the one place that calls them.
template <class Alloc>
AM_ALWAYS_INLINE void* observed_alloc(size_t size, Api api, Alloc alloc) {
  if (AM_LIKELY(!observed())) return alloc();
  observe_alloc_begin(size, api);
  void* p = alloc();
  observe_alloc_end(p, size, api);
  return p;
}
template <class Release>
AM_ALWAYS_INLINE void observed_free(void* p, size_t usable, Api api, Release release) {
  if (AM_LIKELY(!observed())) return release();
  observe_free_begin(p, usable, api);
  release();
  observe_free_end(p, usable, api);
}

void* try_small(void* cl, HeapStatus* status) {
  return thread_cache_alloc_slow(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(cl)), status);
}

// An object of class cl from the thread cache's slow path, with the
// memory-limit policy on failure. What the limit stopped is a whole span of
// the class, so that is what the callback is told is needed.
void* small_from_cache(uint32_t cl) {
  background_poke();
  HeapStatus status = HeapStatus::kOk;
  void* p = thread_cache_alloc_slow(cl, &status);
  if (AM_UNLIKELY(p == nullptr)) {
    if (status == HeapStatus::kLimit) {
      profiler_on_memory_limit();
      p = memory_limit_retry(class_info(cl).pages << kPageShift, try_small, reinterpret_cast<void*>(uintptr_t{cl}));
    }
    if (p == nullptr) errno = ENOMEM;
  }
  harden_mark_live(p);
  return p;
}

// A sampled object: its own span, recorded by the profiler.
AM_NOINLINE AM_ENTRY_SECTION void* alloc_sampled(size_t size, size_t align, bool* zeroed, Api api) {
  return observed_alloc(size, api, [&]() -> void* {
    Span* s = large_span(size, align, zeroed);
    if (s == nullptr) return nullptr;
    profiler_record_alloc(s, size);
    return reinterpret_cast<void*>(s->start());
  });
}

}  // namespace

namespace {

// Every large allocation: pending checks, the sampler, the observers, the span.
AM_ALWAYS_INLINE void* large_alloc(size_t size, size_t align, bool* zeroed, Api api, bool room) {
  ensure_initialized();
  miss_checks();
  *zeroed = false;
  // Beyond half the address space no request can succeed; saying so early
  // also keeps the page arithmetic below from overflowing. Nor can one the
  // machine could never back (heap/system_alloc.h): refused before reserving.
  if (size > kMaxRequest || align > kMaxRequest || !system_could_back(size + align)) {
    return observed_alloc(size, api, []() -> void* {
      errno = ENOMEM;
      return nullptr;
    });
  }
  if (AM_UNLIKELY(sample_countdown(tls_cache, size)) && sampler_take(size))
    return alloc_sampled(size, align, zeroed, api);
  return observed_alloc(size, api, [&]() -> void* {
    Span* s = large_span(size, align, zeroed, room);
    return s ? reinterpret_cast<void*>(s->start()) : nullptr;
  });
}

}  // namespace

void* alloc_large_zeroed(size_t size, size_t align, bool* zeroed, Api api) {
  return large_alloc(size, align, zeroed, api, /*room=*/false);
}

void* alloc_large(size_t size, size_t align, Api api) {
  bool zeroed;
  return large_alloc(size, align, &zeroed, api, /*room=*/false);
}

// Why the room: a buffer grown by realloc in 64 KiB steps to 256 MiB moved 132
// times without it (each move copies the whole buffer; in-place growth only
// reaches the end of the region the buffer was moved into) and took 2.97 s
// against glibc's 0.80 s; with it, 15 moves and 1.12 s against glibc's 1.24 s
// (test/bench/realloc_growth.cc, one run each on a loaded machine). The room
// is free pages in their own set: released ones are never touched, so they
// cost no RSS.
void* alloc_large_growing(size_t size, Api api) {
  bool zeroed;
  return large_alloc(size, kPageSize, &zeroed, api, /*room=*/true);
}

void* small_alloc_miss(uint32_t cl, size_t size, Api api) {
  miss_checks();
  return observed_alloc(size, api, [cl] { return small_from_cache(cl); });
}

void small_free_miss(void* p, uint32_t cl, Api api) {
  miss_checks();
  observed_free(p, class_size(cl), api, [p, cl, api] {
    if (AM_UNLIKELY(!thread_cache_free_slow(p, cl))) fatal_double_free(am_api_name(api), p);
  });
}

void* alloc_miss(size_t size, Api api) {
  ThreadCache& tc = tls_cache;
  // A negative countdown: the fast path stopped before its pop because the
  // countdown ran out (sampler_take decides, and re-arms it).
  if (AM_UNLIKELY(tc.sample_left < 0)) {
    bool zeroed;
    if (sampler_take(size)) return alloc_sampled(size, kDefaultAlign, &zeroed, api);
    if (void* p = pop_list(tc, g_fast_route.list_offset[class_index(size)])) return p;
  }
  uint32_t cl = route_class(size);
  // Class 0 is hardening's route (harden.h): the real class, checked path.
  if (AM_UNLIKELY(cl == 0)) return harden_alloc_class(size_to_class(size), size, api);
  return small_alloc_miss(cl, size, api);
}

void free_miss(void* p, Api api) {
  uint32_t cl;
  // The size-class table's gate, not the route's: hardening closes the latter.
  if (AM_LIKELY(small_object(p, &cl))) {
    if (AM_UNLIKELY(harden_on())) return harden_free(p, cl, api);
    return small_free_miss(p, cl, api);
  }
  free_slow(p, api);
}

void* alloc_aligned(size_t size, size_t align, Api api) {
  if (align <= kDefaultAlign) return alloc_fast(size, api);
  if (size <= kMaxSmallSize && align <= kPageSize) {
    if (uint32_t cl = size_to_class_aligned(size, align)) {
      ThreadCache& tc = tls_cache;
      if (AM_UNLIKELY(sample_countdown(tc, size)) && sampler_take(size)) {
        bool zeroed;
        return alloc_sampled(size, align, &zeroed, api);
      }
      if (AM_UNLIKELY(harden_on())) return harden_alloc_class(cl, size, api);
      void* p = pop_list(tc, cl * sizeof(FreeList));
      return AM_LIKELY(p != nullptr) ? p : small_alloc_miss(cl, size, api);
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
  bool freed = s != nullptr && (s->state == Span::kFree || s->state == Span::kCached) &&
               s->contains_page(a >> kPageShift);
  if (freed && freeing) fatal_double_free(function, p);
  fatal_invalid_pointer(function, p);
}

void free_slow(void* p, Api api) {
  if (p == nullptr) return;
  miss_checks();
  if (Span* s = large_span_of(p)) {
    return observed_free(p, s->usable_bytes(), api, [s] {
      if (s->sampled) profiler_record_free(s);
      remove_guard_page(s);
      page_heap_free_large(s);
    });
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

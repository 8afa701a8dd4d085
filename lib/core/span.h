// Span: a run of contiguous pages and what it is used for.
//
// Owns: the per-span record. A span is in exactly one state:
//   kFree  - in the page heap's free lists (backed, or released to the OS);
//   kLarge - handed to the application as one object (> kMaxSmallSize, or an
//            alignment beyond the page size);
//   kSmall - carved into objects of one size class, owned by the central cache;
//   kReleasing - taken out of the free lists by the scavenger while it calls
//            madvise without the page-heap lock (not a merge candidate);
//   kCached - a freed large object's span kept whole by the page heap's
//            large-span cache (heap/page_heap_cache.cc) for the next request
//            of its size (not a merge candidate; freeing it again is a
//            double free);
//   kDead  - the record is in the span pool (its pagemap entries may be stale:
//            every lookup validates state and range).
// Lock: a span's fields are written under the lock of the tier that owns it
// (page heap for kFree/kLarge, the class's central lock for kSmall objects).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/config.h"

namespace am {

struct Span;
// Links of a span in one of the page heap's search trees (heap/page_heap_tree.h).
struct SpanTreeLinks {
  Span* left = nullptr;
  Span* right = nullptr;
  Span* parent = nullptr;
};

struct Span {
  enum State : uint8_t { kDead = 0, kFree, kLarge, kSmall, kReleasing, kCached };

  uintptr_t first_page = 0;  // address >> kPageShift
  size_t num_pages = 0;
  Span* list_prev = nullptr;
  Span* list_next = nullptr;

  // kSmall: objects returned to this span, linked through their first word,
  // and objects never handed out yet (indices [bump, capacity)): carving lazily
  // means a span's memory is only touched as objects are really used.
  void* free_objects = nullptr;
  uint32_t bump = 0;
  uint32_t in_use = 0;  // objects handed to the thread caches or the application

  // kFree, kCached: when it was freed (the scavenger releases idle spans) and whether its
  // pages were returned to the OS (then they read as zero).
  uint64_t free_since_ns = 0;

  State state = kDead;
  uint8_t size_class = 0;
  bool released = false;
  bool in_nonempty = false;  // kSmall: linked in the central cache's nonempty list
  // NUMA page-heap partition of the pages (numa_topology.h): set when the
  // region is mapped, kept by every split; where the span goes when freed.
  uint8_t node = 0;
  // kLarge: one object sampled by the heap profiler (sampler.h): its bucket
  // (`profile`, and sample_tail/sample_excess below), so free_slow updates the
  // profile in O(1). Written by the thread that allocates
  // and the one that frees the object; cleared before the span is freed.
  bool sampled = false;
  // kLarge: the span's last page is an inaccessible guard (AMMALLOC_GUARD_PAGES,
  // alloc_slow.cc), not part of the object.
  bool guard = false;
  void* profile = nullptr;

  // kFree, linked in a page-heap free set (heap/page_heap_internal.h): spans
  // of more than 128 pages sit in two search trees, by size and by free time.
  // joined_right: the span's right neighbour is linked free too (a run of
  // adjacent free spans of both sets, searched by take_mixed_run through the
  // partition's list of such spans, run_prev/run_next).
  SpanTreeLinks by_size;
  SpanTreeLinks by_age;
  Span* run_prev = nullptr;
  Span* run_next = nullptr;
  bool linked = false;
  bool joined_right = false;
  // kLarge, sampled: what the profiler added for the object, so that its free
  // takes off exactly that (observe/profiler.cc): the requested size is
  // usable_bytes() - sample_tail (less than two pages: the span was sized for
  // it), its unsampled weight that size + sample_excess (at most the sampling
  // period, <= 1 GiB). They fill the record's tail padding (144 bytes either way).
  uint16_t sample_tail = 0;
  uint32_t sample_excess = 0;

  uintptr_t start() const { return first_page << kPageShift; }
  size_t bytes() const { return num_pages << kPageShift; }
  // kLarge: the object's usable bytes (the span less its guard page).
  size_t usable_bytes() const { return bytes() - (guard ? kPageSize : 0); }
  uintptr_t last_page() const { return first_page + num_pages - 1; }
  bool contains_page(uintptr_t page) const { return page >= first_page && page <= last_page(); }
};

}  // namespace am

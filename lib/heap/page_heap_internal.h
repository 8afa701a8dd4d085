// PageHeap internals shared by page_heap.cc (allocation, accounting, stats,
// the span split), page_heap_release.cc (the release mechanism and its THP
// advice) and page_heap_cache.cc (the large-span cache).
// Not an interface: everything here is guarded by g_ph.lock
// (LockRank::kPageHeap); page_heap.h describes the design.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/intrusive_list.h"
#include "base/spinlock.h"
#include "core/meta_arena.h"
#include "core/numa_topology.h"
#include "core/span.h"
#include "heap/page_heap_tree.h"

namespace am::ph {

// Spans up to 128 pages (1 MiB) have exact lists: nearly every small-class span
// and most large objects fall there, so best fit is a bitmap scan.
constexpr size_t kMaxExactPages = 128;
constexpr size_t kBitmapWords = (kMaxExactPages + 1 + 63) / 64;

// Longer spans are in two treaps (page_heap_tree.h): by size, so best fit is
// O(log n) (lower bound, then at most kPreferScan equal sizes for the huge
// page preference), and by free time, so the growth offset and the scavenger
// take the longest idle ones in O(log n) each.
struct FreeSet {
  IntrusiveList<Span> exact[kMaxExactPages + 1];
  SizeTree large;
  AgeTree large_by_age;
  uint64_t nonempty[kBitmapWords] = {};
  size_t bytes = 0;
};

// One NUMA partition's page heap.
struct Partition {
  FreeSet sets[2];  // [0] backed, [1] released
  // Linked free spans whose right neighbour is linked free too (Span::
  // joined_right; through run_prev/run_next): the runs take_mixed_run
  // searches, instead of every free span. Same-set neighbours coalesce, so
  // these are the boundaries between backed and released pages (few: where
  // the scavenger or the growth offset released part of a free area).
  Span* joined = nullptr;
  size_t joined_count = 0;
  size_t releasing_backed = 0;    // as in PageHeapState
  size_t releasing_released = 0;
  size_t mapped = 0;
  size_t small_span_bytes = 0;
  size_t large_bytes = 0;
  size_t cached = 0;  // bytes of its spans in the large-span cache (free, resident)
};

struct PageHeapState {
  SpinLock lock{LockRank::kPageHeap};
  ObjectPool<Span> spans;
  size_t small_span_bytes = 0;
  size_t large_bytes = 0;
  size_t large_count = 0;
  size_t peak_in_use = 0;
  size_t mapped = 0;         // bytes of all regions
  size_t backed_free = 0;    // bytes in every partition's backed set
  size_t released_free = 0;  // bytes in every partition's released set
  // Taken out of the sets by a scavenger pass while it madvises them: still
  // counted as free (backed) or released as they were, so the figures add up
  // during a pass.
  size_t releasing_backed = 0;
  size_t releasing_released = 0;
  size_t resident_peak = 0;  // max of mapped - released
};

extern PageHeapState g_ph;
extern Partition g_parts[kMaxNumaPartitions];

inline FreeSet& set_of(const Span* s) { return g_parts[s->node].sets[s->released ? 1 : 0]; }

inline size_t resident() { return g_ph.mapped - g_ph.released_free - g_ph.releasing_released; }

// A run of pages on its way to the OS (state kReleasing, out of the sets) and
// how many of its bytes were backed (the rest were released already: pulled
// in to cover a whole huge page range).
struct Pending {
  Span* span;
  size_t backed_bytes;
  // THP advice around the release (see plan_advice): ranges to advise
  // MADV_NOHUGEPAGE first (huge page index + 1; 0 = none), and whole ranges
  // to advise MADV_HUGEPAGE again after it.
  uintptr_t nohuge[2];
  uintptr_t rehuge_first;
  size_t rehuge_count;
};

// Most runs one release call takes out at a time.
constexpr size_t kMaxPending = 64;

// A batch of runs in flight (taken out, not yet put back), on its caller's
// stack, linked into g_in_flight under the lock from the take to the put-back:
// the one record of runs that are in no set. A fork child (whose releasing
// thread is gone; its stack is still mapped) puts them back
// (page_heap_unlock_after_fork).
struct InFlight {
  Pending* items = nullptr;
  size_t n = 0;
  InFlight* prev = nullptr;
  InFlight* next = nullptr;
};
void in_flight_add(InFlight* f);  // lock held; f->n > 0
// Every run of f back into its set as released (ok) or backed, with the
// accounting (lock held); unlinks f. Returns the backed bytes released.
size_t in_flight_put_back(InFlight* f, const bool* ok, bool* refused);
// Fork child, lock held: every batch in flight goes back, as backed (the
// parent may have released some of its pages already: resident errs safe).
void in_flight_after_fork_child();

// Releases runs taken out of the sets (called without the lock): the THP
// advice, madvise(MADV_DONTNEED), and back into the sets (released, or backed
// if the kernel refused: *refused). Returns the backed bytes released. f was
// linked (in_flight_add) when its runs were taken; it is unlinked here.
size_t release_pending(InFlight* f, bool* refused);
// Growth offset (lock held): takes the longest-idle backed free spans of more
// than 1 MiB of partition part, worth at least `bytes` (or all there are), out
// of the sets into out[] (at most max). Returns the count.
size_t take_for_offset(int part, size_t bytes, Pending* out, size_t max);

// Links a free span into its set (state kFree; its free time unchanged) and
// maps its first and last pages to it; no coalescing.
void link_free(Span* s);
void unlink_free(Span* s);
// Returns a span record to the pool.
void dispose(Span* s);
// Span records for what follows (lock held): at least n free in the pool,
// false if the metadata arena could not give them (out of memory). carve and
// grow take their records from the pool without asking the arena, so every
// path that may carve or grow reserves first, before it changes anything,
// and fails (or skips what is optional) when this says false: an
// allocation reserves kSpansPerAlloc, a release path what it will carve.
bool spare_spans(size_t n);
// Most records one allocation takes: a new region's span (grow) or the piece
// of a mixed run left over (take_mixed_run), an alignment prefix, and the
// tail trimmed off.
constexpr size_t kSpansPerAlloc = 3;
// The one span split. Carves `pages` pages (0 < pages < s->num_pages) off the
// front (kPrefix) or the back (kSuffix) of s into a new span record, which
// it returns; s keeps the rest (same record). The new span inherits s's
// node, released flag, state and free time (a piece of a free span has been
// free as long as the span); both pieces' first and last pages are mapped to
// them in the pagemap. Neither piece is linked into a set: the caller links,
// inserts, claims or releases each. Huge-page live counts do not change:
// they count pages of live spans, and only spans outside them (free, or
// taken and not yet handed out) are split. The record comes from the pool,
// which the caller filled (spare_spans): carve itself cannot fail.
enum class Side : uint8_t { kPrefix, kSuffix };
Span* carve(Span* s, size_t pages, Side side);
// Puts s (not linked) into its set as kFree, merging with free neighbours of
// the same set and partition; the result counts as freed at freed_ns (0: now).
void insert_free(Span* s, uint64_t freed_ns = 0);
// The large-span cache (page_heap_cache.cc has the why and the bounds).
// cache_put: keeps the span of a freed large object (state kCached); false
// if it does not fit (the caller inserts it into the free sets).
bool cache_put(Span* s);
// A cached span of pages..pages+pages/8 pages, starting at a multiple of
// align_pages, in partition part (state kLarge, its pages still counted live
// in the 2 MiB map); nullptr if none.
Span* cache_take(size_t pages, size_t align_pages, int part);
// s back to the free sets if it is cached (a realloc growing into it).
bool cache_remove(Span* s);
// Every span cached before freed_before_ns back to the free sets (all of
// them for a cutoff after now); stamps the free time of those cached since
// the last call. Returns their bytes.
size_t cache_flush(uint64_t freed_before_ns);
size_t cache_bytes();

}  // namespace am::ph

// The large-span cache of the page heap (declared in page_heap_internal.h).
//
// Why: a large malloc+free through the free sets is ~1,100 instructions
// (callgrind, 5 MiB, a heap with 10,000 free holes): best fit in the size
// tree, a split, pagemap writes, the 2 MiB map's live counts, then on the free
// two neighbour lookups, coalescing and two tree updates. That made a large
// malloc+free 3.4x tcmalloc's time (0.23 us against 0.067; scripts/bench.sh
// --spans). Programs that free a buffer and ask for one of the same size soon
// after (activations every step, KV blocks, I/O buffers) pay it every time.
//
// What: the spans of the most recently freed large objects, kept whole (state
// kCached: in no free set, never coalesced, a free of their address is a
// double free; the 2 MiB map still counts their pages live, they are resident
// and taken back whole). A request takes the most recent one that is at least
// its pages and at most 1/8 longer (the rest is slack malloc_usable_size
// reports), aligned as asked and in its partition: a pointer walk and the
// accounting, under the page-heap lock it already holds.
//
// Bounds, so that the cache never costs memory or contiguity:
//   - at most kCacheEntries spans of at most kCacheMaxBytes each and
//     AMMALLOC_LARGE_CACHE bytes in all; when full, the oldest goes to the
//     free sets;
//   - all of it goes to the free sets at the first large request it cannot
//     serve (alloc_large_locked, page_heap.cc), so a program whose sizes do
//     not repeat gets the coalesced sets' best fit, as without the cache. Kept
//     until the heap grew instead, cached spans stopped their neighbours from
//     coalescing and most recent first is not best fit: the inference step
//     (test/bench/inference.cc, one thread, random buffer sizes every step)
//     found 10-42 MiB of backed free memory in pieces too small for its
//     requests, the growth offset released 110 MB instead of 15 and the run
//     took 0.21 s instead of 0.14 (1.7x the user time, the pages refaulted);
//     with the flush at a miss it is 0.16 s against 0.20 without the cache;
//   - small-span requests still flush it before the heap would make released
//     or new pages resident (take(), page_heap.cc): cached pages are used
//     before the resident set grows;
//   - a scavenger pass gives back those freed before its rule's time, with
//     that free time (so RSS falls after a peak as it did without the cache,
//     up to one pass later: cache_flush has why), and page_heap_release_all
//     all of them.
// Lock: g_ph.lock (LockRank::kPageHeap) for everything here.
#include "core/options.h"
#include "core/pagemap.h"
#include "heap/hugepage_map.h"
#include "heap/page_heap_internal.h"
#include "os/os.h"

namespace am::ph {
namespace {

// 64 spans of up to 16 MiB, AMMALLOC_LARGE_CACHE bytes in all (64 MiB by
// default). 16 MiB: above it a buffer's first touch costs far more than the
// free sets' ~1,100 instructions. 64 entries: a step of many buffers of the
// same few sizes finds its sizes again. With the cache a 5 MiB malloc+free in
// a heap of 10,000 free holes takes 0.027 us instead of 0.27 (test/bench/
// pageheap_spans.cc), test/bench/large.cc runs 0.23 s instead of 0.28 and
// the inference step 0.16 s instead of 0.20 (means of 5-8 runs).
constexpr size_t kCacheEntries = 64;
constexpr size_t kCacheMaxBytes = size_t{16} << 20;

struct LargeCache {
  IntrusiveList<Span> spans;  // most recently freed first (list_prev/list_next)
  Span* oldest = nullptr;
  size_t bytes = 0;
};
constinit LargeCache g_cache;

void unlink(Span* s) {
  if (g_cache.oldest == s) g_cache.oldest = s->list_prev;
  g_cache.spans.remove(s);
  g_cache.bytes -= s->bytes();
  g_parts[s->node].cached -= s->bytes();
}

// Out of the cache into the free sets, as freed at its stamp (unstamped:
// now; insert_free reads 0 so).
void uncache(Span* s) {
  unlink(s);
  hugepage_note_live(s->first_page, s->num_pages, -1);
  insert_free(s, s->free_since_ns);
}

}  // namespace

bool cache_put(Span* s) {
  const size_t cap = static_cast<size_t>(option(kOptLargeCache));
  if (s->bytes() > kCacheMaxBytes || s->bytes() > cap) return false;
  while (g_cache.spans.size() >= kCacheEntries || g_cache.bytes + s->bytes() > cap)
    uncache(g_cache.oldest);
  s->state = Span::kCached;
  s->free_since_ns = 0;  // stamped by the next scavenger pass (cache_flush)
  g_cache.spans.push_front(s);
  if (g_cache.oldest == nullptr) g_cache.oldest = s;
  g_cache.bytes += s->bytes();
  g_parts[s->node].cached += s->bytes();
  return true;
}

Span* cache_take(size_t pages, size_t align_pages, int part) {
  const size_t most = pages + pages / 8;
  for (Span* s = g_cache.spans.front(); s; s = s->list_next) {
    if (s->num_pages < pages || s->num_pages > most || s->node != part ||
        (s->first_page & (align_pages - 1)) != 0)
      continue;
    unlink(s);
    s->state = Span::kLarge;
    return s;
  }
  return nullptr;
}

bool cache_remove(Span* s) {
  if (s->state != Span::kCached) return false;
  uncache(s);
  return true;
}

// Free times: a span is stamped with the time of the first flush call after
// it was cached (a scavenger pass, normally), not at its free: a clock read
// was 4 ns of the 28 of a cached 5 MiB malloc+free (18 instructions and a
// read of the vDSO's time page). So a cached span counts as freed up to one
// scavenger interval (1 s by default) later than it was, and the scavenger
// releases it that much later; never sooner. Unstamped spans are the most
// recent, at the front of the list; stamped ones behind them, oldest last.
size_t cache_flush(uint64_t freed_before_ns) {
  if (g_cache.spans.empty()) return 0;  // every large miss asks: no clock read then
  const uint64_t now = os::coarse_now_ns();
  // A cutoff at or after now (page_heap_release_all, a delay of 0, a miss):
  // everything, unstamped spans too.
  const bool all = freed_before_ns > now;
  size_t bytes = 0;
  while (Span* s = g_cache.oldest) {
    if (!all && (s->free_since_ns == 0 || s->free_since_ns >= freed_before_ns)) break;
    bytes += s->bytes();
    uncache(s);
  }
  for (Span* s = g_cache.spans.front(); s && s->free_since_ns == 0; s = s->list_next) s->free_since_ns = now;
  return bytes;
}

size_t cache_bytes() { return g_cache.bytes; }

}  // namespace am::ph

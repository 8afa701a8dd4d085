// PageHeap: allocation, the free sets, the span split (carve), the growth
// offset, accounting and stats (see page_heap.h for the design and its
// invariants; the release mechanism is in page_heap_release.cc).
// Locks: everything under g_ph.lock (LockRank::kPageHeap), except the growth
// offset's madvise calls, made by the allocating thread after dropping it.
#include "heap/page_heap.h"

#include <bit>

#include "base/intrusive_list.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "heap/hugepage_map.h"
#include "core/meta_arena.h"
#include "core/numa_topology.h"
#include "core/options.h"
#include "os/os.h"
#include "heap/page_heap_internal.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "heap/system_alloc.h"
#include "heap/work_report.h"

namespace am {
namespace ph {

constinit PageHeapState g_ph;
// All zero, so in .bss: only the partitions in use are ever touched.
constinit Partition g_parts[kMaxNumaPartitions];

namespace {

// When the heap reports background work (heap/work_report.h).
constexpr size_t kReportFreeBytes = size_t{1} << 20;
constexpr size_t kReportMappedBytes = size_t{32} << 20;

// A free span adjacent to s in the same set and partition, or nullptr.
// Pagemap entries can be stale, so the candidate must really be free, in the
// same set, and touch s.
Span* free_neighbour(const Span* s, uintptr_t page, bool left) {
  Span* n = pagemap_span_of_page(page);
  if (n == nullptr || n == s || n->state != Span::kFree || n->released != s->released || n->node != s->node)
    return nullptr;
  bool touches = left ? n->last_page() + 1 == s->first_page : n->first_page == s->last_page() + 1;
  return touches && !hugepage_own_boundary(left ? n->last_page() : s->last_page()) ? n : nullptr;
}

}  // namespace

namespace {

// The linked free span adjacent to s on the left (or right) in s's
// partition, whatever its set, or nullptr. A linked span's first and last
// pages map to it, so the pagemap finds it; stale entries fail the checks.
Span* linked_neighbour(const Span* s, bool left) {
  Span* n = pagemap_span_of_page(left ? s->first_page - 1 : s->last_page() + 1);
  if (n == nullptr || n == s || !n->linked || n->state != Span::kFree || n->node != s->node) return nullptr;
  bool touches = left ? n->last_page() + 1 == s->first_page : n->first_page == s->last_page() + 1;
  return touches && !hugepage_own_boundary(left ? n->last_page() : s->last_page()) ? n : nullptr;
}

void set_joined(Span* s, bool on) {
  if (s->joined_right == on) return;
  Partition& pt = g_parts[s->node];
  s->joined_right = on;
  if (on) {
    s->run_prev = nullptr;
    s->run_next = pt.joined;
    if (pt.joined) pt.joined->run_prev = s;
    pt.joined = s;
    ++pt.joined_count;
  } else {
    if (s->run_prev)
      s->run_prev->run_next = s->run_next;
    else
      pt.joined = s->run_next;
    if (s->run_next) s->run_next->run_prev = s->run_prev;
    s->run_prev = s->run_next = nullptr;
    --pt.joined_count;
  }
}

}  // namespace

void link_free(Span* s) {
  s->state = Span::kFree;
  FreeSet& fs = set_of(s);
  if (s->num_pages <= kMaxExactPages) {
    fs.exact[s->num_pages].push_front(s);
    fs.nonempty[s->num_pages / 64] |= uint64_t{1} << (s->num_pages % 64);
  } else {
    fs.large.insert(s);
    fs.large_by_age.insert(s);
  }
  fs.bytes += s->bytes();
  (s->released ? g_ph.released_free : g_ph.backed_free) += s->bytes();
  pagemap_set_span(s->first_page, s);
  pagemap_set_span(s->last_page(), s);
  s->linked = true;
  if (Span* l = linked_neighbour(s, true)) set_joined(l, true);
  if (linked_neighbour(s, false)) set_joined(s, true);
}

void unlink_free(Span* s) {
  FreeSet& fs = set_of(s);
  if (s->num_pages <= kMaxExactPages) {
    IntrusiveList<Span>& l = fs.exact[s->num_pages];
    l.remove(s);
    if (l.empty()) fs.nonempty[s->num_pages / 64] &= ~(uint64_t{1} << (s->num_pages % 64));
  } else {
    fs.large.erase(s);
    fs.large_by_age.erase(s);
  }
  fs.bytes -= s->bytes();
  (s->released ? g_ph.released_free : g_ph.backed_free) -= s->bytes();
  if (Span* l = linked_neighbour(s, true)) set_joined(l, false);
  set_joined(s, false);
  s->linked = false;
}

void dispose(Span* s) {
  s->state = Span::kDead;
  s->linked = false;
  g_ph.spans.put(s);
}

bool spare_spans(size_t n) { return g_ph.spans.reserve(n); }

Span* carve(Span* s, size_t pages, Side side) {
  // Never empty here: the caller reserved (spare_spans), so get() does not
  // ask the metadata arena. Failing this is a bug in that caller.
  AM_CHECK(g_ph.spans.free_count() > 0);
  Span* piece = g_ph.spans.get();
  piece->node = s->node;
  piece->released = s->released;
  piece->state = s->state;
  piece->free_since_ns = s->free_since_ns;
  piece->num_pages = pages;
  s->num_pages -= pages;
  if (side == Side::kPrefix) {
    piece->first_page = s->first_page;
    s->first_page += pages;
  } else {
    piece->first_page = s->first_page + s->num_pages;
  }
  for (Span* x : {s, piece}) {
    pagemap_set_span(x->first_page, x);
    pagemap_set_span(x->last_page(), x);
  }
  return piece;
}

void insert_free(Span* s, uint64_t freed_ns) {
  s->state = Span::kFree;
  s->free_since_ns = freed_ns != 0 ? freed_ns : os::coarse_now_ns();
  if (Span* l = free_neighbour(s, s->first_page - 1, true)) {
    unlink_free(l);
    s->first_page = l->first_page;
    s->num_pages += l->num_pages;
    dispose(l);
  }
  if (Span* r = free_neighbour(s, s->last_page() + 1, false)) {
    unlink_free(r);
    s->num_pages += r->num_pages;
    dispose(r);
  }
  link_free(s);
  // Reported: 1 MiB of idle resident pages are waiting (a scavenger may return
  // them); policy/background.cc decides what to do about it.
  if (!s->released && g_ph.backed_free >= kReportFreeBytes) report_background_work();
}

}  // namespace ph

using namespace ph;

namespace {

// Grow by at least this much at a time: fewer mmaps, and 2 MiB-aligned regions.
constexpr size_t kMinGrowBytes = kRegionAlign;
// Exact lists: how many spans best fit looks at for one in a partly used huge
// page range before it settles for the front (bounded: the lists can be long).
constexpr int kPreferScan = 8;

// Growth offset: a request of more than 1 MiB that no resident free span can
// serve makes the resident set grow (released or new pages). As much resident
// free memory in spans of more than 1 MiB, the longest idle first, goes back
// to the OS (by the allocating thread, after the lock is dropped), so that a
// program whose buffer sizes change does not keep the pages of the old sizes
// besides the new ones. A request that a resident span fits touches nothing:
// the same sizes again reuse their pages without a fault.
// Slack: resident free memory up to 1/8 of the partition's live bytes stays.
// Large buffers of random sizes (test/bench/large: 64 KiB..64 MiB) then have the
// kernel zero 3-4x their peak (what is released is refaulted soon after); 1/4
// cuts that by a third but raised large's peak RSS by 30% (1.40x the leanest
// peer instead of about 1.1x in scripts/bench.sh --quick), 1/2 by half for a
// peak half again as high. The zeroing is expensive mostly on VMs that hand
// idle free memory back to their host (commit 1e71ca0 has the figures), so the
// leaner peak wins.
constexpr size_t kMaxOffset = 16;
constexpr size_t kOffsetSlackDiv = 8;
struct Offset {
  Pending items[kMaxOffset];
  InFlight f;  // items, linked while its runs are in flight
};

constinit size_t g_offset_released = 0;  // bytes, for stats

// The memory limit in force (AMMALLOC_MEMORY_LIMIT, am_option_set or
// am_set_memory_limit's value): read where used. 0: none.
size_t limit() { return static_cast<size_t>(option(kOptMemoryLimit)); }

void note_resident() {
  if (resident() > g_ph.resident_peak) g_ph.resident_peak = resident();
}

// Whether a free span shares a huge page range with live pages. Its interior
// ranges lie wholly inside it (free), so only its first and last can.
bool in_used_hugepage(const Span* s) {
  return hugepage_live_pages(hugepage_of_page(s->first_page)) != 0 ||
         hugepage_live_pages(hugepage_of_page(s->last_page())) != 0;
}

Span* best_fit(FreeSet& fs, size_t pages) {
  const bool thp = thp_enabled();
  if (pages <= kMaxExactPages) {
    for (size_t w = pages / 64; w < kBitmapWords; ++w) {
      uint64_t bits = fs.nonempty[w];
      if (w == pages / 64) bits &= ~uint64_t{0} << (pages % 64);
      if (!bits) continue;
      Span* front = fs.exact[w * 64 + static_cast<size_t>(std::countr_zero(bits))].front();
      if (thp) {
        int k = 0;
        for (Span* c = front; c && k < kPreferScan; c = c->list_next, ++k)
          if (in_used_hugepage(c)) return c;
      }
      return front;
    }
  }
  // Smallest that fits (a lower bound in the size tree); among equals, one
  // in a partly used range (the first such among the first kPreferScan, in
  // address order); then the lowest address.
  Span* first = fs.large.first_not([pages](const Span* x) { return x->num_pages < pages; });
  if (first == nullptr || !thp) return first;
  int k = 0;
  for (Span* c = first; c && c->num_pages == first->num_pages && k < kPreferScan; c = SizeTree::next(c), ++k)
    if (in_used_hugepage(c)) return c;
  return first;
}

// Splits the pages after the first `pages` of s off into a new free span of the
// same set (no coalescing needed: its right neighbour was not mergeable with s).
void trim_tail(Span* s, size_t pages) {
  if (s->num_pages > pages) link_free(carve(s, s->num_pages - pages, Side::kSuffix));
}

// Free spans next to each other but in different sets (backed and released do
// not coalesce) form runs that neither set's best fit sees whole: after a few
// rounds of large buffers of changing sizes, with the growth offset and the
// scavenger releasing parts of them, most of the heap is such runs. Before the
// heap grows, the shortest run of partition part of at least `pages` pages
// that mixes the sets is taken out of them: its first `pages` pages become one
// span (state kFree, not linked, marked backed: its contents are not known to
// be zero), the rest of its last member goes back to that member's set.
// Only released pages in it turn resident, instead of all `pages` of a new
// region (a page fault each, and the resident set growing by all of them).
// Cost: a walk over the partition's joined spans (Partition::joined: the
// boundaries between adjacent free spans, not every free span), only when
// both sets failed; nothing when there are none.
Span* take_mixed_run(int part, size_t pages) {
  auto next_free = [](const Span* c) -> Span* {
    return c->joined_right ? pagemap_span_of_page(c->last_page() + 1) : nullptr;
  };
  Span* best = nullptr;
  size_t best_total = ~size_t{0};
  for (Span* s = g_parts[part].joined; s; s = s->run_next) {
    if (linked_neighbour(s, true)) continue;  // not the start of its run: seen from there
    size_t total = s->num_pages;
    Span* c = s;
    while (total < pages && (c = next_free(c)) != nullptr) total += c->num_pages;
    if (total >= pages && total < best_total) {
      best = s;
      best_total = total;
    }
  }
  if (best == nullptr) return nullptr;
  size_t got = 0;
  Span* c = best;
  for (;;) {
    Span* n = got + c->num_pages < pages ? next_free(c) : nullptr;
    unlink_free(c);
    got += c->num_pages;
    if (got >= pages) {
      // The tail of the last member stays in its set (c is not best: best
      // alone is shorter than pages).
      if (got > pages) link_free(carve(c, got - pages, Side::kSuffix));
      if (c != best) dispose(c);
      break;
    }
    if (c != best) dispose(c);
    c = n;
  }
  best->num_pages = pages;
  best->released = false;
  best->state = Span::kFree;
  return best;
}

// A new region for partition part, as one free span. False if the OS refused
// (the region, or the metadata that records it): then nothing changed. The
// record for its span is had before the region is asked for, and the region
// comes with its pagemap leaves (system_alloc.h), so once it is mapped
// nothing can fail and no region is ever left outside the page heap.
bool grow(size_t pages, int part) {
  if (!spare_spans(1)) return false;
  size_t want = pages << kPageShift;
  SystemRegion r = system_alloc_region(want < kMinGrowBytes ? kMinGrowBytes : want, part);
  if (r.start == 0) return false;
  uintptr_t first = r.start >> kPageShift;
  size_t n = r.bytes >> kPageShift;
  g_ph.mapped += r.bytes;
  // Reported: a heap of 32 MiB may need a scavenger even if the program never
  // frees while allocating (build a peak, free it, go idle).
  if (g_ph.mapped >= kReportMappedBytes) report_background_work();
  g_parts[part].mapped += r.bytes;
  Span* s = g_ph.spans.get();
  s->first_page = first;
  s->num_pages = n;
  s->node = static_cast<uint8_t>(part);
  s->released = true;  // fresh anonymous memory: not resident, reads as zero
  insert_free(s);
  return true;
}

// Takes a free span of at least `pages` pages out of partition part's sets
// (backed first: its pages are already resident), growing the heap if needed.
// nullptr with *status kLimit or kNoMemory on failure.
Span* take(size_t pages, int part, Offset* off, HeapStatus* status) {
  Partition& pt = g_parts[part];
  Span* s = best_fit(pt.sets[0], pages);
  size_t lim = 0;
  // Cached spans are resident: used before released or new pages are.
  if (!s && cache_flush(~uint64_t{0}) != 0) s = best_fit(pt.sets[0], pages);
  const bool resident_fit = s != nullptr;
  if (!s) {
    // Released or new pages become resident: that is what the limit counts.
    lim = limit();
    if (lim != 0 && resident() + (pages << kPageShift) > lim) {
      // Resident pages on another node beat failing.
      for (int q = 0; q < numa_partitions() && !s; ++q)
        if (q != part) s = best_fit(g_parts[q].sets[0], pages);
      if (!s) {
        *status = HeapStatus::kLimit;
        return nullptr;
      }
    } else {
      s = best_fit(pt.sets[1], pages);
    }
  }
  bool mixed = false;
  if (!s && lim == 0) {
    s = take_mixed_run(part, pages);
    mixed = s != nullptr;
  }
  if (!s) {
    if (!grow(pages, part)) {
      *status = HeapStatus::kNoMemory;
      return nullptr;
    }
    s = best_fit(pt.sets[1], pages);
    if (!s) s = best_fit(pt.sets[0], pages);
  }
  if (!mixed) unlink_free(s);
  s->state = Span::kLarge;  // out of the sets: never a merge candidate now
  if (off && !resident_fit && !s->released && !mixed) off = nullptr;  // another node's resident span
  if (off && !resident_fit && pages > kMaxExactPages) {
    // Resident free memory up to 1/kOffsetSlackDiv of the partition's live
    // bytes stays: slack saves a release and a refault when sizes move back.
    size_t slack = (pt.small_span_bytes + pt.large_bytes) / kOffsetSlackDiv;
    size_t want = pages << kPageShift;
    if (pt.sets[0].bytes > slack) {
      if (want > pt.sets[0].bytes - slack) want = pt.sets[0].bytes - slack;
      off->f.items = off->items;
      off->f.n = take_for_offset(part, want, off->items, kMaxOffset);
      if (off->f.n) in_flight_add(&off->f);
    }
  }
  return s;
}

void note_in_use() {
  size_t in_use = g_ph.small_span_bytes + g_ph.large_bytes;
  if (in_use > g_ph.peak_in_use) g_ph.peak_in_use = in_use;
}

// Marks a span taken from the sets as resident (its state is decided by the caller).
bool claim(Span* s) {
  bool zeroed = s->released;
  s->released = false;
  note_resident();
  return zeroed;
}

}  // namespace

namespace {

constinit bool g_time_lock = false;
constinit PageHeapLockTiming g_lock_timing;

// The page-heap lock, timed while page_heap_time_lock(true) is in force.
class HeapLock {
 public:
  HeapLock() : timed_(__atomic_load_n(&g_time_lock, __ATOMIC_RELAXED)) {
    g_ph.lock.lock();
    if (timed_) t0_ = os::now_ns();
  }
  ~HeapLock() {
    if (timed_) {
      uint64_t dt = os::now_ns() - t0_;
      ++g_lock_timing.count;
      g_lock_timing.total_ns += dt;
      if (dt > g_lock_timing.max_ns) g_lock_timing.max_ns = dt;
    }
    g_ph.lock.unlock();
  }
  HeapLock(const HeapLock&) = delete;
  HeapLock& operator=(const HeapLock&) = delete;

 private:
  bool timed_;
  uint64_t t0_ = 0;
};

Span* alloc_large_locked(size_t pages, size_t align_pages, size_t room_pages, bool* zeroed, Offset* off,
                         HeapStatus* status) {
  size_t extra = align_pages - 1;
  if (pages + extra < pages || pages + extra + room_pages < pages + extra) {
    *status = HeapStatus::kNoMemory;
    return nullptr;
  }
  // A size the cache could not serve (page_heap_alloc_large asked it first):
  // the sets get its spans back, coalesced, before best fit looks
  // (page_heap_cache.cc: why).
  if (room_pages == 0) cache_flush(~uint64_t{0});
  if (!spare_spans(kSpansPerAlloc)) {
    *status = HeapStatus::kNoMemory;
    return nullptr;
  }
  Span* s = take(pages + extra + room_pages, numa_current_partition(), off, status);
  if (!s) return nullptr;
  if (align_pages > 1) {
    uintptr_t aligned = (s->first_page + extra) & ~static_cast<uintptr_t>(extra);
    if (size_t lead = aligned - s->first_page) insert_free(carve(s, lead, Side::kPrefix));
  }
  trim_tail(s, pages);
  *zeroed = claim(s);
  s->state = Span::kLarge;
  s->size_class = 0;
  pagemap_set_span(s->first_page, s);
  pagemap_set_span(s->last_page(), s);
  hugepage_note_live(s->first_page, s->num_pages, +1);
  g_ph.large_bytes += s->bytes();
  g_parts[s->node].large_bytes += s->bytes();
  ++g_ph.large_count;
  note_in_use();
  return s;
}

// A cached span of pages..pages+pages/8 pages (page_heap_cache.cc), now a
// large object's; nullptr if none. Lock held. It needs no span record.
Span* take_cached(size_t pages, size_t align_pages) {
  Span* c = cache_take(pages, align_pages, numa_current_partition());
  if (c == nullptr) return nullptr;
  g_ph.large_bytes += c->bytes();
  g_parts[c->node].large_bytes += c->bytes();
  ++g_ph.large_count;
  note_in_use();
  return c;
}

// Everything but a cache hit: the sets, the heap's growth and the growth
// offset's releases (made here after the lock is dropped). Out of line: its
// frame holds the offset's batch (kMaxOffset runs, ~850 bytes).
AM_NOINLINE Span* alloc_large_uncached(size_t pages, size_t align_pages, bool* zeroed, HeapStatus* st,
                                       size_t room_pages) {
  Offset off;
  Span* s;
  {
    HeapLock g;
    s = alloc_large_locked(pages, align_pages, room_pages, zeroed, &off, st);
  }
  if (off.f.n) {
    bool refused = false;
    size_t bytes = release_pending(&off.f, &refused);
    __atomic_fetch_add(&g_offset_released, bytes, __ATOMIC_RELAXED);
  }
  return s;
}

// A span taken for size class cl becomes a kSmall span (lock held).
void make_small(Span* s, uint32_t cl) {
  trim_tail(s, class_info(cl).pages);
  claim(s);
  s->state = Span::kSmall;
  s->size_class = static_cast<uint8_t>(cl);
  s->free_objects = nullptr;
  s->bump = 0;
  s->in_use = 0;
  s->in_nonempty = false;
  for (size_t i = 0; i < s->num_pages; ++i) {
    pagemap_set_span(s->first_page + i, s);
    pagemap_set_small_info(s->first_page + i, make_small_info(cl, i << kPageShift));
  }
  hugepage_note_live(s->first_page, s->num_pages, +1);
  g_ph.small_span_bytes += s->bytes();
  g_parts[s->node].small_span_bytes += s->bytes();
  note_in_use();
}

}  // namespace

Span* page_heap_alloc_large(size_t pages, size_t align_pages, bool* zeroed, HeapStatus* status, size_t room_pages) {
  HeapStatus local;
  HeapStatus* st = status ? status : &local;
  *st = HeapStatus::kOk;
  // The cache first (a request with room wants pages after the object, which
  // a cached span does not have). On a miss the lock is taken twice: ~20
  // cycles against the ~1,100 instructions of the sets.
  if (room_pages == 0 && option(kOptLargeCache) != 0) {
    HeapLock g;
    if (Span* c = take_cached(pages, align_pages)) {
      *zeroed = false;
      return c;
    }
  }
  return alloc_large_uncached(pages, align_pages, zeroed, st, room_pages);
}

void page_heap_free_large(Span* s) {
  HeapLock g;
  g_ph.large_bytes -= s->bytes();
  g_parts[s->node].large_bytes -= s->bytes();
  --g_ph.large_count;
  if (cache_put(s)) return;
  hugepage_note_live(s->first_page, s->num_pages, -1);
  insert_free(s);
}

bool page_heap_resize_large(Span* s, size_t pages, HeapStatus* status) {
  HeapStatus local;
  HeapStatus* st = status ? status : &local;
  *st = HeapStatus::kOk;
  if (pages == 0 || s->guard || s->sampled) return false;
  LockGuard g(g_ph.lock);
  if (pages == s->num_pages) return true;
  // The one record a shrink or a growth carves; without it the block moves
  // (and that allocation says ENOMEM if memory is that short).
  if (!spare_spans(1)) {
    *st = HeapStatus::kNoMemory;
    return false;
  }
  if (pages < s->num_pages) {
    Span* tail = carve(s, s->num_pages - pages, Side::kSuffix);
    hugepage_note_live(tail->first_page, tail->num_pages, -1);
    g_ph.large_bytes -= tail->bytes();
    g_parts[s->node].large_bytes -= tail->bytes();
    insert_free(tail);
    return true;
  }
  const size_t extra = pages - s->num_pages;
  Span* n = pagemap_span_of_page(s->last_page() + 1);
  // A cached span after it goes back to the free sets first (and may merge).
  if (n != nullptr && n->first_page == s->last_page() + 1 && cache_remove(n))
    n = pagemap_span_of_page(s->last_page() + 1);
  // Not across the edge of a region with a reservation of its own (it could
  // not be unmapped whole once free: system_alloc.h).
  if (n == nullptr || n->state != Span::kFree || !n->linked || n->node != s->node ||
      n->first_page != s->last_page() + 1 || n->num_pages < extra || hugepage_own_boundary(s->last_page()))
    return false;
  if (n->released && limit() != 0 && resident() + (extra << kPageShift) > limit()) {
    *st = HeapStatus::kLimit;
    return false;
  }
  unlink_free(n);
  if (n->num_pages > extra) link_free(carve(n, n->num_pages - extra, Side::kSuffix));
  claim(n);
  s->num_pages += extra;
  pagemap_set_span(s->last_page(), s);
  hugepage_note_live(n->first_page, extra, +1);
  g_ph.large_bytes += n->bytes();
  g_parts[s->node].large_bytes += n->bytes();
  dispose(n);
  note_in_use();
  return true;
}

Span* page_heap_alloc_small(uint32_t cl, HeapStatus* status) {
  const SizeClassInfo& info = class_info(cl);
  HeapStatus local;
  HeapStatus* st = status ? status : &local;
  *st = HeapStatus::kOk;
  Span* s;
  {
    HeapLock g;
    if (!spare_spans(kSpansPerAlloc)) {
      *st = HeapStatus::kNoMemory;
      return nullptr;
    }
    s = take(info.pages, numa_current_partition(), nullptr, st);
    if (s) make_small(s, cl);
  }
  return s;
}

void page_heap_free_small(Span* s) {
  HeapLock g;
  for (size_t i = 0; i < s->num_pages; ++i) pagemap_set_small_info(s->first_page + i, 0);
  g_ph.small_span_bytes -= s->bytes();
  g_parts[s->node].small_span_bytes -= s->bytes();
  hugepage_note_live(s->first_page, s->num_pages, -1);
  s->size_class = 0;
  insert_free(s);
}

size_t page_heap_resident_bytes() {
  LockGuard g(g_ph.lock);
  return resident();
}
size_t page_heap_resident_peak() {
  LockGuard g(g_ph.lock);
  return g_ph.resident_peak;
}
void page_heap_reset_peaks() {
  LockGuard g(g_ph.lock);
  g_ph.resident_peak = resident();
  g_ph.peak_in_use = g_ph.small_span_bytes + g_ph.large_bytes;
}

PageHeapStats page_heap_stats() {
  LockGuard g(g_ph.lock);
  PageHeapStats st;
  st.free_bytes = g_ph.backed_free + g_ph.releasing_backed + cache_bytes();
  st.cached_bytes = cache_bytes();
  st.released_bytes = g_ph.released_free + g_ph.releasing_released;
  st.small_span_bytes = g_ph.small_span_bytes;
  st.large_bytes = g_ph.large_bytes;
  st.large_count = g_ph.large_count;
  st.peak_in_use_bytes = g_ph.peak_in_use;
  st.resident_bytes = resident();
  st.resident_peak = g_ph.resident_peak;
  st.offset_released_bytes = __atomic_load_n(&g_offset_released, __ATOMIC_RELAXED);
  st.releasing_bytes = g_ph.releasing_backed + g_ph.releasing_released;
  for (int p = 0; p < numa_partitions(); ++p) {
    for (FreeSet& fs : g_parts[p].sets) {
      for (size_t n = 1; n <= kMaxExactPages; ++n) {
        st.free_spans += fs.exact[n].size();
        if (!fs.exact[n].empty() && (n << kPageShift) > st.largest_free_bytes)
          st.largest_free_bytes = n << kPageShift;
      }
      st.free_spans += fs.large.size();
      if (Span* s = fs.large.last(); s && s->bytes() > st.largest_free_bytes) st.largest_free_bytes = s->bytes();
    }
  }
  return st;
}

int page_heap_partitions() { return numa_partitions(); }

PageHeapPartitionStats page_heap_partition_stats(int partition) {
  PageHeapPartitionStats st;
  if (partition < 0 || partition >= kMaxNumaPartitions) return st;
  LockGuard g(g_ph.lock);
  const Partition& pt = g_parts[partition];
  st.node = numa_node_of_partition(partition);
  st.mapped = pt.mapped;
  st.free_bytes = pt.sets[0].bytes + pt.releasing_backed + pt.cached;
  st.released_bytes = pt.sets[1].bytes + pt.releasing_released;
  st.small_span_bytes = pt.small_span_bytes;
  st.large_bytes = pt.large_bytes;
  return st;
}

NumaInfo page_heap_numa_info() {
  LockGuard g(g_ph.lock);
  numa_settle();
  return numa_info();
}

void page_heap_time_lock(bool on) {
  LockGuard g(g_ph.lock);
  g_lock_timing = {};
  __atomic_store_n(&g_time_lock, on, __ATOMIC_RELAXED);
}

PageHeapLockTiming page_heap_take_lock_timing() {
  LockGuard g(g_ph.lock);
  PageHeapLockTiming t = g_lock_timing;
  g_lock_timing = {};
  return t;
}

void page_heap_lock_for_fork() { g_ph.lock.lock_unchecked(); }
void page_heap_unlock_after_fork(bool child) {
  if (child) {
    // Runs a vanished thread was releasing (kReleasing, in no set) would be
    // lost to the child: back into the sets.
    in_flight_after_fork_child();
    g_ph.lock.reset_in_child();
  } else {
    g_ph.lock.unlock_unchecked();
  }
}

}  // namespace am

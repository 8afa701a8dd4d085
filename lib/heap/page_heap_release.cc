// The release mechanism of the page heap: takes the backed free runs a
// ReleaseRule selects out of the sets (lock held), madvises them without the
// lock, and puts them back as released; the THP advice that keeps the
// kernel's huge pages consistent with what was released. Which runs a
// background pass releases is decided by policy/scavenger.cc (the rule);
// page_heap.h describes the design, page_heap_internal.h the shared state.
// Locks: g_ph.lock (LockRank::kPageHeap) while taking and putting back, never
// across a madvise call.
#include "heap/hugepage_map.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "heap/page_heap_internal.h"
#include "core/pagemap.h"
#include "heap/system_alloc.h"

namespace am {

using namespace ph;

namespace {

// A range advised MADV_NOHUGEPAGE by the scavenger gets MADV_HUGEPAGE back
// once this many of its pages are live again (7/8: khugepaged would fill at
// most 1/8 of it with zeros). Part of the mechanism, not of the rule: it
// undoes the mechanism's own MADV_NOHUGEPAGE advice (plan_advice) once the
// reason for it is gone, whatever the policy released.
constexpr uint32_t kRehugifyLivePages = static_cast<uint32_t>(kPagesPerHugePage * 7 / 8);

// Bytes entering (+) a scavenger pass, by what they were.
void note_releasing(int part, size_t backed, size_t released) {
  g_ph.releasing_backed += backed;
  g_ph.releasing_released += released;
  g_parts[part].releasing_backed += backed;
  g_parts[part].releasing_released += released;
}

// A run joins the pass (state kReleasing, out of the sets, backed pages).
void start_releasing(Span* s, Pending* out) {
  s->state = Span::kReleasing;
  *out = {s, s->bytes(), {0, 0}, 0, 0};
  note_releasing(s->node, s->bytes(), 0);
}

// With THP: a range the run covers only in part loses its huge page and is
// advised MADV_NOHUGEPAGE (once), or khugepaged would collapse it again and
// the released pages would come back as resident zeros; ranges the run covers
// whole that had been so advised get MADV_HUGEPAGE back after the release (an
// empty range faults in as a huge page again). The flags change here, under
// the lock; the madvise calls are made with the releases.
void plan_advice(Pending& pd) {
  if (!thp_active()) return;
  const uintptr_t first = pd.span->first_page, end = first + pd.span->num_pages;
  const uintptr_t hp_first = hugepage_of_page(first), hp_last = hugepage_of_page(end - 1);
  auto partial = [&](uintptr_t hp) {
    return first > first_page_of_hugepage(hp) || end < first_page_of_hugepage(hp + 1);
  };
  if (partial(hp_first) && !hugepage_set_dehugified(hp_first, true)) pd.nohuge[0] = hp_first + 1;
  if (hp_last != hp_first && partial(hp_last) && !hugepage_set_dehugified(hp_last, true))
    pd.nohuge[1] = hp_last + 1;
  uintptr_t whole_first = partial(hp_first) ? hp_first + 1 : hp_first;
  uintptr_t whole_end = partial(hp_last) ? hp_last : hp_last + 1;
  bool any = false;
  for (uintptr_t hp = whole_first; hp < whole_end; ++hp) any |= hugepage_set_dehugified(hp, false);
  if (any) {
    pd.rehuge_first = whole_first;
    pd.rehuge_count = whole_end - whole_first;
  }
}

// Moves into r (kReleasing) the pages of n, a released free span next to it,
// that lie in [lo, hi]; the rest of n stays in its set. Skipped when no span
// record can be had for that rest (out of memory): it is only an extension.
void absorb_released(Span* r, Span* n, uintptr_t lo, uintptr_t hi) {
  if (!spare_spans(1)) return;
  unlink_free(n);
  const bool left = n->first_page < r->first_page;
  if (left && n->first_page < lo) link_free(carve(n, lo - n->first_page, Side::kPrefix));
  if (!left && n->last_page() > hi) link_free(carve(n, n->last_page() - hi, Side::kSuffix));
  note_releasing(r->node, 0, n->bytes());
  if (left) r->first_page = n->first_page;
  r->num_pages += n->num_pages;
  dispose(n);
}

// The released free span of r's node that touches r on the left (or right),
// or nullptr. Pagemap entries can be stale: the candidate must touch r.
Span* released_neighbour(const Span* r, bool left) {
  Span* n = pagemap_span_of_page(left ? r->first_page - 1 : r->last_page() + 1);
  if (n == nullptr || n == r || n->state != Span::kFree || !n->released || n->node != r->node) return nullptr;
  return (left ? n->last_page() + 1 == r->first_page : n->first_page == r->last_page() + 1) ? n : nullptr;
}

// Grows r (kReleasing, backed pages) over the released free pages next to it
// that lie in the same huge page ranges: with THP the kernel backs a whole
// range by one huge page when any page of it is touched, so pages we count as
// released (never touched, or released before) can be resident as part of it;
// once part of the range goes back the huge page is split and they would stay
// resident as small pages. Releasing them again costs nothing when they are not.
void extend_over_released(Span* r) {
  const uintptr_t lo = first_page_of_hugepage(hugepage_of_page(r->first_page));
  if (r->first_page > lo)
    if (Span* n = released_neighbour(r, true)) absorb_released(r, n, lo, r->first_page - 1);
  const uintptr_t hi = first_page_of_hugepage(hugepage_of_page(r->last_page()) + 1) - 1;
  if (r->last_page() < hi)
    if (Span* n = released_neighbour(r, false)) absorb_released(r, n, r->last_page() + 1, hi);
}

// The rule's huge-page verdict for one idle backed span s (linked): which of
// its pages go. A range's free pages go if it has at most
// rule.sparse_live_pages live pages (wholly free ones included), or if s has
// been idle long enough for a dense range (dense_ok). Takes the runs that go
// out of the sets into out[] (at most room; *more if that was too few) and
// links the rest back. Returns the count added.
size_t take_by_huge_page(Span* s, uint32_t sparse_live_pages, bool dense_ok, Pending* out, size_t room,
                         bool* more) {
  auto goes = [&](uintptr_t page) {
    uint32_t live = hugepage_live_pages(hugepage_of_page(page));
    return live <= sparse_live_pages || dense_ok;
  };
  auto run_end = [&](uintptr_t page, uintptr_t end) {  // end of the run of equal verdicts from page
    bool v = goes(page);
    while (page < end && goes(page) == v) {
      uintptr_t next = first_page_of_hugepage(hugepage_of_page(page) + 1);
      page = next < end ? next : end;
    }
    return page;
  };
  const uintptr_t first = s->first_page, end = s->first_page + s->num_pages;
  size_t runs = 0, pieces = 0;
  for (uintptr_t p = first; p < end; p = run_end(p, end)) runs += goes(p), ++pieces;
  if (runs == 0) return 0;
  if (runs > room) {
    *more = true;
    return 0;
  }
  // A record per piece but the first (out of memory: s stays as it is).
  if (!spare_spans(pieces - 1)) return 0;
  unlink_free(s);
  size_t k = 0;
  Span* cur = s;  // covers [p, end)
  for (uintptr_t p = first;;) {
    uintptr_t q = run_end(p, end);
    bool go = goes(p);
    Span* piece = cur;
    if (q < end) cur = carve(piece, end - q, Side::kSuffix);
    if (go) {
      start_releasing(piece, &out[k]);
      extend_over_released(piece);
      plan_advice(out[k++]);
    } else {
      link_free(piece);  // keeps its idle time; neighbours are not mergeable
    }
    if (q == end) break;
    p = q;
  }
  return k;
}

// Backed free spans freed before the rule's cutoff (or the parts of them its
// huge-page verdict releases), at most `max`, taken out of the sets (state
// kReleasing) so they can be madvised without the lock. *more: stopped
// because out[] was full.
size_t take_idle(const ReleaseRule& rule, Pending* out, size_t max, bool* more) {
  const bool thp = thp_active();
  size_t n = 0;
  // One idle span (n < max): whole, or the parts the huge-page verdict picks.
  auto take_one = [&](Span* s) {
    if (!rule.by_huge_page) {
      unlink_free(s);
      start_releasing(s, &out[n]);
      if (thp) extend_over_released(s);
      plan_advice(out[n++]);
    } else {
      n += take_by_huge_page(s, rule.sparse_live_pages, s->free_since_ns < rule.dense_before_ns, out + n, max - n,
                             more);
    }
  };
  auto scan = [&](IntrusiveList<Span>& list) {
    // Only this list's spans, and released ones (other lists), are unlinked
    // below, and pieces linked back go to list fronts: `next` stays valid.
    for (Span* s = list.front(); s;) {
      Span* next = s->list_next;
      if (n == max) {
        *more = true;
        return;
      }
      if (s->free_since_ns < rule.freed_before_ns) take_one(s);
      s = next;
    }
  };
  for (int p = 0; p < numa_partitions() && n < max; ++p) {
    FreeSet& backed = g_parts[p].sets[0];
    // Long spans in free-time order, so the walk stops at the first that is
    // not idle enough. Pieces a huge-page verdict links back keep their free
    // time and may come up again: then nothing of them goes (runs == 0).
    for (Span* s = backed.large_by_age.first(); s && s->free_since_ns < rule.freed_before_ns;) {
      Span* next = AgeTree::next(s);
      if (n == max) {
        *more = true;
        break;
      }
      take_one(s);
      if (*more) break;
      s = next;
    }
    for (size_t pages = kMaxExactPages; pages >= 1 && n < max; --pages) scan(backed.exact[pages]);
  }
  if (n == max) *more = true;
  return n;
}

// Unmaps the regions with a reservation of their own (>= 1 GiB) that are one
// free span, free since before before_ns: out of the sets and the pagemap
// under the lock, munmap without it. Free spans never merge across such a
// region's edges (hugepage_own_boundary), so a wholly free one is exactly
// one span. Returns the bytes unmapped.
size_t unmap_idle_regions(uint64_t before_ns) {
  constexpr size_t kBatch = 16;
  size_t total = 0;
  for (;;) {
    SystemRegion gone[kBatch];
    size_t n = 0;
    {
      LockGuard g(g_ph.lock);
      for (size_t i = 0; i < system_own_regions() && n < kBatch;) {
        SystemRegion r = system_own_region(i);
        const uintptr_t first = r.start >> kPageShift, pages = r.bytes >> kPageShift;
        Span* s = pagemap_span_of_page(first);
        if (s == nullptr || !s->linked || s->state != Span::kFree || s->first_page != first ||
            s->num_pages != pages || s->free_since_ns >= before_ns) {
          ++i;
          continue;
        }
        unlink_free(s);
        pagemap_set_span(first, nullptr);
        pagemap_set_span(first + pages - 1, nullptr);
        g_ph.mapped -= r.bytes;
        g_parts[s->node].mapped -= r.bytes;
        dispose(s);
        system_forget_region(i);  // the last one moves to i: not advanced
        gone[n++] = r;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      system_free_region(gone[i].start, gone[i].bytes);
      total += gone[i].bytes;
    }
    if (n < kBatch) return total;
  }
}

}  // namespace

namespace ph {

namespace {
constinit InFlight* g_in_flight = nullptr;  // guarded by g_ph.lock
}  // namespace

void in_flight_add(InFlight* f) {
  f->prev = nullptr;
  f->next = g_in_flight;
  if (g_in_flight) g_in_flight->prev = f;
  g_in_flight = f;
}

size_t in_flight_put_back(InFlight* f, const bool* ok, bool* refused) {
  if (f->prev)
    f->prev->next = f->next;
  else
    g_in_flight = f->next;
  if (f->next) f->next->prev = f->prev;
  size_t released = 0;
  for (size_t i = 0; i < f->n; ++i) {
    Span* s = f->items[i].span;
    // A refused run goes back as backed (also the released pages it took
    // in: resident as far as we know, which errs on the safe side).
    s->released = ok[i];
    if (ok[i]) released += f->items[i].backed_bytes;
    *refused |= !ok[i];
    size_t backed = f->items[i].backed_bytes, pulled = s->bytes() - backed;
    g_ph.releasing_backed -= backed;
    g_ph.releasing_released -= pulled;
    g_parts[s->node].releasing_backed -= backed;
    g_parts[s->node].releasing_released -= pulled;
    insert_free(s);  // coalesces with released neighbours
  }
  f->n = 0;
  return released;
}

void in_flight_after_fork_child() {
  const bool none[kMaxPending] = {};
  bool refused = false;
  while (g_in_flight) in_flight_put_back(g_in_flight, none, &refused);
}

size_t release_pending(InFlight* f, bool* refused) {
  bool ok[kMaxPending];
  Pending* batch = f->items;
  const size_t n = f->n;
  for (size_t i = 0; i < n; ++i) {
    const Pending& pd = batch[i];
    for (uintptr_t h : pd.nohuge)
      if (h) os::advise_nohugepage(reinterpret_cast<void*>((h - 1) << kHugePageShift), kHugePageSize);
    ok[i] = os::release(reinterpret_cast<void*>(pd.span->start()), pd.span->bytes());
    if (ok[i] && pd.rehuge_count)
      os::advise_hugepage(reinterpret_cast<void*>(pd.rehuge_first << kHugePageShift),
                          pd.rehuge_count << kHugePageShift);
  }
  LockGuard g(g_ph.lock);
  return in_flight_put_back(f, ok, refused);
}

size_t take_for_offset(int part, size_t bytes, Pending* out, size_t max) {
  // The longest idle first (the age tree's order): buffers of sizes the
  // program stopped using.
  Span* pick[kMaxPending];
  size_t n = 0;
  if (max > kMaxPending) max = kMaxPending;
  for (Span* s = g_parts[part].sets[0].large_by_age.first(); s && n < max; s = AgeTree::next(s)) pick[n++] = s;
  size_t k = 0, got = 0;
  for (; k < n && got < bytes; ++k) {
    Span* s = pick[k];
    got += s->bytes();
    unlink_free(s);
    start_releasing(s, &out[k]);
    if (thp_active()) extend_over_released(s);
    plan_advice(out[k]);
  }
  return k;
}

}  // namespace ph

size_t page_heap_release(const ReleaseRule& rule) {
  // Batches of 64 runs: the lock is dropped for the madvise calls (a 1 GiB
  // madvise takes milliseconds), and every allocation may proceed meanwhile.
  constexpr size_t kBatch = kMaxPending;
  Pending batch[kBatch];
  size_t released = 0;
  {
    // Cached spans as idle as the rule asks go to the free sets first, with
    // their free time, so that this pass can release them.
    LockGuard g(g_ph.lock);
    cache_flush(rule.freed_before_ns);
  }
  unmap_idle_regions(rule.unmap_before_ns);
  for (;;) {
    size_t n;
    bool more = false;
    InFlight f;
    f.items = batch;
    {
      LockGuard g(g_ph.lock);
      n = take_idle(rule, batch, kBatch, &more);
      f.n = n;
      if (n) in_flight_add(&f);
    }
    if (n == 0) break;
    bool refused = false;
    released += release_pending(&f, &refused);
    // A refusal (e.g. mlock'ed pages) would be refused again: stop this pass.
    if (!more || refused) break;
  }
  // Ranges a pass advised MADV_NOHUGEPAGE that are dense again get their
  // huge page back (khugepaged collapses them).
  if (thp_active()) {
    uintptr_t dense[kBatch];
    size_t n;
    {
      LockGuard g(g_ph.lock);
      n = hugepage_take_dense_dehugified(kRehugifyLivePages, dense, kBatch);
    }
    for (size_t i = 0; i < n; ++i)
      os::advise_hugepage(reinterpret_cast<void*>(dense[i] << kHugePageShift), kHugePageSize);
  }
  return released;
}

size_t page_heap_release_all() { return page_heap_release(ReleaseRule{}); }

}  // namespace am

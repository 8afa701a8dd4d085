// PageHeap implementation (see page_heap.h).
#include "page_heap.h"

#include <bit>

#include "background.h"
#include "base/intrusive_list.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "hugepage.h"
#include "meta_arena.h"
#include "numa_placement.h"
#include "os/os.h"
#include "pagemap.h"
#include "size_class.h"
#include "system_alloc.h"

namespace am {
namespace {

// Spans up to 128 pages (1 MiB) have exact lists: nearly every small-class span
// and most large objects fall there, so best fit is a bitmap scan.
constexpr size_t kMaxExactPages = 128;
constexpr size_t kBitmapWords = (kMaxExactPages + 1 + 63) / 64;
// Grow by at least this much at a time: fewer mmaps, and 2 MiB-aligned regions.
constexpr size_t kMinGrowBytes = kRegionAlign;
// Exact lists: how many spans best fit looks at for one in a partly used huge
// page range before it settles for the front (bounded: the lists can be long).
constexpr int kPreferScan = 8;
// A range with at most this many live pages (1/4) is sparse: the scavenger
// releases its free pages although that splits its huge page.
constexpr uint32_t kSparseLivePages = static_cast<uint32_t>(kPagesPerHugePage / 4);
// Free pages of a dense range go only when idle this much longer than the
// release delay (as a fraction of it): half again as long.
constexpr uint64_t kDenseExtraDelayNum = 1, kDenseExtraDelayDen = 2;

struct FreeSet {
  IntrusiveList<Span> exact[kMaxExactPages + 1];
  IntrusiveList<Span> large;
  uint64_t nonempty[kBitmapWords] = {};
  size_t bytes = 0;
};

// One NUMA partition's page heap.
struct Partition {
  FreeSet sets[2];  // [0] backed, [1] released
  size_t releasing_backed = 0;    // as in PageHeapState
  size_t releasing_released = 0;
  size_t mapped = 0;
  size_t small_span_bytes = 0;
  size_t large_bytes = 0;
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
  size_t limit = 0;          // 0: none
};

// Set under the lock when a request failed on the limit; read by the thread
// that made it, after the lock is dropped.
constinit thread_local AM_TLS_IE bool t_limit_hit = false;

constinit PageHeapState g_ph;
// All zero, so in .bss: only the partitions in use are ever touched.
constinit Partition g_parts[kMaxNumaPartitions];

FreeSet& set_of(const Span* s) { return g_parts[s->node].sets[s->released ? 1 : 0]; }

size_t resident() { return g_ph.mapped - g_ph.released_free - g_ph.releasing_released; }

void note_resident() {
  if (resident() > g_ph.resident_peak) g_ph.resident_peak = resident();
}

void link_free(Span* s) {
  FreeSet& fs = set_of(s);
  if (s->num_pages <= kMaxExactPages) {
    fs.exact[s->num_pages].push_front(s);
    fs.nonempty[s->num_pages / 64] |= uint64_t{1} << (s->num_pages % 64);
  } else {
    fs.large.push_front(s);
  }
  fs.bytes += s->bytes();
  (s->released ? g_ph.released_free : g_ph.backed_free) += s->bytes();
  pagemap_set_span(s->first_page, s);
  pagemap_set_span(s->last_page(), s);
}

void unlink_free(Span* s) {
  FreeSet& fs = set_of(s);
  if (s->num_pages <= kMaxExactPages) {
    IntrusiveList<Span>& l = fs.exact[s->num_pages];
    l.remove(s);
    if (l.empty()) fs.nonempty[s->num_pages / 64] &= ~(uint64_t{1} << (s->num_pages % 64));
  } else {
    fs.large.remove(s);
  }
  fs.bytes -= s->bytes();
  (s->released ? g_ph.released_free : g_ph.backed_free) -= s->bytes();
}

void dispose(Span* s) {
  s->state = Span::kDead;
  g_ph.spans.put(s);
}

// A free span adjacent to s in the same set and partition, or nullptr.
// Pagemap entries can be stale, so the candidate must really be free, in the
// same set, and touch s.
Span* free_neighbour(const Span* s, uintptr_t page, bool left) {
  Span* n = pagemap_span_of_page(page);
  if (n == nullptr || n == s || n->state != Span::kFree || n->released != s->released || n->node != s->node)
    return nullptr;
  bool touches = left ? n->last_page() + 1 == s->first_page : n->first_page == s->last_page() + 1;
  return touches ? n : nullptr;
}

// Puts s (not linked, state about to become kFree) into its set, merging with free
// neighbours of the same set.
void insert_free(Span* s) {
  s->state = Span::kFree;
  s->free_since_ns = os::now_ns();
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
  // 1 MiB of idle resident pages is worth a scavenger thread.
  if (!s->released && g_ph.backed_free >= (size_t{1} << 20)) background_want();
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
  // Smallest that fits; among equals, one in a partly used range; then the
  // lowest address.
  Span* best = nullptr;
  bool best_used = false;
  for (Span* s = fs.large.front(); s; s = s->list_next) {
    if (s->num_pages < pages || (best && s->num_pages > best->num_pages)) continue;
    bool used = thp && in_used_hugepage(s);
    if (best && s->num_pages == best->num_pages) {
      if (used != best_used ? !used : s->first_page > best->first_page) continue;
    }
    best = s;
    best_used = used;
  }
  return best;
}

// Splits the pages after the first `pages` of s off into a new free span of the
// same set (no coalescing needed: its right neighbour was not mergeable with s).
void trim_tail(Span* s, size_t pages) {
  if (s->num_pages == pages) return;
  Span* rest = g_ph.spans.get();
  rest->first_page = s->first_page + pages;
  rest->num_pages = s->num_pages - pages;
  rest->released = s->released;
  rest->node = s->node;
  rest->state = Span::kFree;
  rest->free_since_ns = s->free_since_ns;
  s->num_pages = pages;
  link_free(rest);
}

bool grow(size_t pages, int part) {
  size_t want = pages << kPageShift;
  SystemRegion r = system_alloc_region(want < kMinGrowBytes ? kMinGrowBytes : want, part);
  if (r.start == 0) return false;
  uintptr_t first = r.start >> kPageShift;
  size_t n = r.bytes >> kPageShift;
  if (!pagemap_ensure(first, n)) return false;
  g_ph.mapped += r.bytes;
  // A heap of 32 MiB is worth a scavenger even if the program never frees
  // while allocating (build a peak, free it, go idle).
  if (g_ph.mapped >= (size_t{32} << 20)) background_want();
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
Span* take(size_t pages, int part) {
  t_limit_hit = false;
  Partition& pt = g_parts[part];
  Span* s = best_fit(pt.sets[0], pages);
  if (!s) {
    // Released or new pages become resident: that is what the limit counts.
    if (g_ph.limit != 0 && resident() + (pages << kPageShift) > g_ph.limit) {
      // Resident pages on another node beat failing.
      for (int q = 0; q < numa_partitions() && !s; ++q)
        if (q != part) s = best_fit(g_parts[q].sets[0], pages);
      if (!s) {
        t_limit_hit = true;
        return nullptr;
      }
    } else {
      s = best_fit(pt.sets[1], pages);
    }
  }
  if (!s) {
    if (!grow(pages, part)) return nullptr;
    s = best_fit(pt.sets[1], pages);
    if (!s) s = best_fit(pt.sets[0], pages);
  }
  unlink_free(s);
  s->state = Span::kLarge;  // out of the sets: never a merge candidate now
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

Span* page_heap_alloc_large(size_t pages, size_t align_pages, bool* zeroed) {
  LockGuard g(g_ph.lock);
  size_t extra = align_pages - 1;
  if (pages + extra < pages) return nullptr;
  Span* s = take(pages + extra, numa_current_partition());
  if (!s) return nullptr;
  if (align_pages > 1) {
    uintptr_t aligned = (s->first_page + extra) & ~static_cast<uintptr_t>(extra);
    if (size_t lead = aligned - s->first_page) {
      Span* head = g_ph.spans.get();
      head->first_page = s->first_page;
      head->num_pages = lead;
      head->released = s->released;
      head->node = s->node;
      s->first_page = aligned;
      s->num_pages -= lead;
      insert_free(head);
    }
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

void page_heap_free_large(Span* s) {
  LockGuard g(g_ph.lock);
  g_ph.large_bytes -= s->bytes();
  g_parts[s->node].large_bytes -= s->bytes();
  --g_ph.large_count;
  hugepage_note_live(s->first_page, s->num_pages, -1);
  insert_free(s);
}

Span* page_heap_alloc_small(uint32_t cl) {
  const SizeClassInfo& info = class_info(cl);
  LockGuard g(g_ph.lock);
  Span* s = take(info.pages, numa_current_partition());
  if (!s) return nullptr;
  trim_tail(s, info.pages);
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
  return s;
}

void page_heap_free_small(Span* s) {
  LockGuard g(g_ph.lock);
  for (size_t i = 0; i < s->num_pages; ++i) pagemap_set_small_info(s->first_page + i, 0);
  g_ph.small_span_bytes -= s->bytes();
  g_parts[s->node].small_span_bytes -= s->bytes();
  hugepage_note_live(s->first_page, s->num_pages, -1);
  s->size_class = 0;
  insert_free(s);
}

namespace {

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
  if (!thp_enabled()) return;
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

// Grows r (kReleasing, backed pages) over the released free pages next to it
// that lie in the same huge page ranges: with THP the kernel backs a whole
// range by one huge page when any page of it is touched, so pages we count as
// released (never touched, or released before) can be resident as part of it;
// once part of the range goes back the huge page is split and they would stay
// resident as small pages. Releasing them again costs nothing when they are not.
void extend_over_released(Span* r) {
  uintptr_t hp = hugepage_of_page(r->first_page);
  uintptr_t lo = first_page_of_hugepage(hp);
  if (r->first_page > lo) {
    Span* n = pagemap_span_of_page(r->first_page - 1);
    if (n && n != r && n->state == Span::kFree && n->released && n->node == r->node &&
        n->last_page() + 1 == r->first_page) {
      unlink_free(n);
      uintptr_t from = n->first_page > lo ? n->first_page : lo;
      if (n->first_page < from) {
        n->num_pages = from - n->first_page;  // its part before the range stays
        link_free(n);
      } else {
        dispose(n);
      }
      note_releasing(r->node, 0, (r->first_page - from) << kPageShift);
      r->num_pages += r->first_page - from;
      r->first_page = from;
    }
  }
  hp = hugepage_of_page(r->last_page());
  uintptr_t hi = first_page_of_hugepage(hp + 1) - 1;
  if (r->last_page() < hi) {
    Span* n = pagemap_span_of_page(r->last_page() + 1);
    if (n && n != r && n->state == Span::kFree && n->released && n->node == r->node &&
        n->first_page == r->last_page() + 1) {
      unlink_free(n);
      uintptr_t to = n->last_page() < hi ? n->last_page() : hi;
      size_t add = to - r->last_page();
      if (n->last_page() > to) {
        n->first_page = to + 1;  // its part after the range stays
        n->num_pages -= add;
        link_free(n);
      } else {
        dispose(n);
      }
      note_releasing(r->node, 0, add << kPageShift);
      r->num_pages += add;
    }
  }
}

// The scavenger's huge-page policy for one idle backed span s (linked): which
// of its pages go. A range's free pages go if it is wholly free or sparse, or
// if s has been idle long enough (dense_ok). Takes the runs that go out of the
// sets into out[] (at most room; *more if that was too few) and links the
// rest back. Returns the count added.
size_t take_by_policy(Span* s, bool dense_ok, Pending* out, size_t room, bool* more) {
  auto goes = [&](uintptr_t page) {
    uint32_t live = hugepage_live_pages(hugepage_of_page(page));
    return live <= kSparseLivePages || dense_ok;
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
  size_t runs = 0;
  for (uintptr_t p = first; p < end; p = run_end(p, end)) runs += goes(p);
  if (runs == 0) return 0;
  if (runs > room) {
    *more = true;
    return 0;
  }
  unlink_free(s);
  size_t k = 0;
  Span* cur = s;  // covers [p, end)
  for (uintptr_t p = first;;) {
    uintptr_t q = run_end(p, end);
    bool go = goes(p);
    Span* piece = cur;
    if (q < end) {
      cur = g_ph.spans.get();
      cur->first_page = q;
      cur->num_pages = end - q;
      cur->node = piece->node;
      cur->released = false;
      cur->free_since_ns = piece->free_since_ns;
      piece->num_pages = q - p;
    }
    if (go) {
      start_releasing(piece, &out[k]);
      extend_over_released(piece);
      plan_advice(out[k++]);
    } else {
      piece->state = Span::kFree;
      link_free(piece);  // keeps its idle time; neighbours are not mergeable
    }
    if (q == end) break;
    p = q;
  }
  return k;
}

// Backed free spans freed before the cutoff (or the parts of them the policy
// releases), at most `max`, taken out of the sets (state kReleasing) so they
// can be madvised without the lock. *more: stopped because out[] was full.
size_t take_idle(uint64_t freed_before_ns, uint64_t dense_before_ns, Pending* out, size_t max, bool* more) {
  const bool thp = thp_enabled();
  const bool all = freed_before_ns == ~uint64_t{0};
  size_t n = 0;
  auto scan = [&](IntrusiveList<Span>& list) {
    // Only this list's spans, and released ones (other lists), are unlinked
    // below, and pieces linked back go to list fronts: `next` stays valid.
    for (Span* s = list.front(); s;) {
      Span* next = s->list_next;
      if (n == max) {
        *more = true;
        return;
      }
      if (s->free_since_ns < freed_before_ns) {
        if (all || !thp) {
          unlink_free(s);
          start_releasing(s, &out[n]);
          if (thp) extend_over_released(s);
          plan_advice(out[n++]);
        } else {
          n += take_by_policy(s, s->free_since_ns < dense_before_ns, out + n, max - n, more);
        }
      }
      s = next;
    }
  };
  for (int p = 0; p < numa_partitions() && n < max; ++p) {
    FreeSet& backed = g_parts[p].sets[0];
    scan(backed.large);
    for (size_t pages = kMaxExactPages; pages >= 1 && n < max; --pages) scan(backed.exact[pages]);
  }
  if (n == max) *more = true;
  return n;
}

}  // namespace

size_t page_heap_release(uint64_t freed_before_ns) {
  // Batches of 64 runs: the lock is dropped for the madvise calls (a 1 GiB
  // madvise takes milliseconds), and every allocation may proceed meanwhile.
  constexpr size_t kBatch = 64;
  Pending batch[kBatch];
  size_t released = 0;
  // The caller's cutoff is now - release delay; dense ranges wait longer.
  uint64_t now = os::now_ns();
  uint64_t dense_before_ns = freed_before_ns;
  if (freed_before_ns < now) {
    uint64_t extra = (now - freed_before_ns) * kDenseExtraDelayNum / kDenseExtraDelayDen;
    dense_before_ns = freed_before_ns > extra ? freed_before_ns - extra : 0;
  }
  for (;;) {
    size_t n;
    bool more = false;
    {
      LockGuard g(g_ph.lock);
      n = take_idle(freed_before_ns, dense_before_ns, batch, kBatch, &more);
    }
    if (n == 0) break;
    bool ok[kBatch];
    for (size_t i = 0; i < n; ++i) {
      const Pending& pd = batch[i];
      for (uintptr_t h : pd.nohuge)
        if (h) os::advise_nohugepage(reinterpret_cast<void*>((h - 1) << kHugePageShift), kHugePageSize);
      ok[i] = os::release(reinterpret_cast<void*>(pd.span->start()), pd.span->bytes());
      if (ok[i] && pd.rehuge_count)
        os::advise_hugepage(reinterpret_cast<void*>(pd.rehuge_first << kHugePageShift),
                            pd.rehuge_count << kHugePageShift);
    }
    bool refused = false;
    LockGuard g(g_ph.lock);
    for (size_t i = 0; i < n; ++i) {
      Span* s = batch[i].span;
      // A refused run goes back as backed (also the released pages it took
      // in: resident as far as we know, which errs on the safe side).
      s->released = ok[i];
      if (ok[i]) released += batch[i].backed_bytes;
      refused |= !ok[i];
      size_t backed = batch[i].backed_bytes, pulled = s->bytes() - backed;
      g_ph.releasing_backed -= backed;
      g_ph.releasing_released -= pulled;
      g_parts[s->node].releasing_backed -= backed;
      g_parts[s->node].releasing_released -= pulled;
      insert_free(s);  // coalesces with released neighbours
    }
    // A refusal (e.g. mlock'ed pages) would be refused again: stop this pass.
    if (!more || refused) break;
  }
  return released;
}

void page_heap_set_limit(size_t bytes) {
  LockGuard g(g_ph.lock);
  g_ph.limit = bytes;
}
size_t page_heap_limit() {
  LockGuard g(g_ph.lock);
  return g_ph.limit;
}
bool page_heap_limit_hit() { return t_limit_hit; }
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
  st.free_bytes = g_ph.backed_free + g_ph.releasing_backed;
  st.released_bytes = g_ph.released_free + g_ph.releasing_released;
  st.small_span_bytes = g_ph.small_span_bytes;
  st.large_bytes = g_ph.large_bytes;
  st.large_count = g_ph.large_count;
  st.peak_in_use_bytes = g_ph.peak_in_use;
  st.resident_bytes = resident();
  st.resident_peak = g_ph.resident_peak;
  for (int p = 0; p < numa_partitions(); ++p) {
    for (FreeSet& fs : g_parts[p].sets) {
      for (size_t n = 1; n <= kMaxExactPages; ++n) {
        st.free_spans += fs.exact[n].size();
        if (!fs.exact[n].empty() && (n << kPageShift) > st.largest_free_bytes)
          st.largest_free_bytes = n << kPageShift;
      }
      for (Span* s = fs.large.front(); s; s = s->list_next) {
        ++st.free_spans;
        if (s->bytes() > st.largest_free_bytes) st.largest_free_bytes = s->bytes();
      }
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
  st.free_bytes = pt.sets[0].bytes + pt.releasing_backed;
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

void page_heap_lock_for_fork() { g_ph.lock.lock_unchecked(); }
void page_heap_unlock_after_fork(bool child) {
  if (child)
    g_ph.lock.reset_in_child();
  else
    g_ph.lock.unlock_unchecked();
}

}  // namespace am

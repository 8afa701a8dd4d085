// PageHeap implementation (see page_heap.h).
#include "page_heap.h"

#include <bit>

#include "background.h"
#include "base/intrusive_list.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "meta_arena.h"
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

struct FreeSet {
  IntrusiveList<Span> exact[kMaxExactPages + 1];
  IntrusiveList<Span> large;
  uint64_t nonempty[kBitmapWords] = {};
  size_t bytes = 0;
};

struct PageHeapState {
  SpinLock lock{LockRank::kPageHeap};
  ObjectPool<Span> spans;
  FreeSet sets[2];  // [0] backed, [1] released
  size_t small_span_bytes = 0;
  size_t large_bytes = 0;
  size_t large_count = 0;
  size_t peak_in_use = 0;
  size_t mapped = 0;         // bytes of all regions
  size_t resident_peak = 0;  // max of mapped - released
  size_t limit = 0;          // 0: none
};

// Set under the lock when a request failed on the limit; read by the thread
// that made it, after the lock is dropped.
constinit thread_local AM_TLS_IE bool t_limit_hit = false;

constinit PageHeapState g_ph;

FreeSet& set_of(const Span* s) { return g_ph.sets[s->released ? 1 : 0]; }

size_t resident() { return g_ph.mapped - g_ph.sets[1].bytes; }

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
}

// A free span adjacent to s in the same set, or nullptr. Pagemap entries can be
// stale, so the candidate must really be free, in the same set, and touch s.
Span* free_neighbour(const Span* s, uintptr_t page, bool left) {
  Span* n = pagemap_span_of_page(page);
  if (n == nullptr || n == s || n->state != Span::kFree || n->released != s->released) return nullptr;
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
    l->state = Span::kDead;
    g_ph.spans.put(l);
  }
  if (Span* r = free_neighbour(s, s->last_page() + 1, false)) {
    unlink_free(r);
    s->num_pages += r->num_pages;
    r->state = Span::kDead;
    g_ph.spans.put(r);
  }
  link_free(s);
  // 1 MiB of idle resident pages is worth a scavenger thread.
  if (!s->released && g_ph.sets[0].bytes >= (size_t{1} << 20)) background_want();
}

Span* best_fit(FreeSet& fs, size_t pages) {
  if (pages <= kMaxExactPages) {
    for (size_t w = pages / 64; w < kBitmapWords; ++w) {
      uint64_t bits = fs.nonempty[w];
      if (w == pages / 64) bits &= ~uint64_t{0} << (pages % 64);
      if (bits) return fs.exact[w * 64 + static_cast<size_t>(std::countr_zero(bits))].front();
    }
  }
  Span* best = nullptr;
  for (Span* s = fs.large.front(); s; s = s->list_next) {
    if (s->num_pages < pages) continue;
    if (!best || s->num_pages < best->num_pages ||
        (s->num_pages == best->num_pages && s->first_page < best->first_page))
      best = s;
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
  rest->state = Span::kFree;
  rest->free_since_ns = s->free_since_ns;
  s->num_pages = pages;
  link_free(rest);
}

bool grow(size_t pages) {
  size_t want = pages << kPageShift;
  SystemRegion r = system_alloc_region(want < kMinGrowBytes ? kMinGrowBytes : want);
  if (r.start == 0) return false;
  uintptr_t first = r.start >> kPageShift;
  size_t n = r.bytes >> kPageShift;
  if (!pagemap_ensure(first, n)) return false;
  g_ph.mapped += r.bytes;
  Span* s = g_ph.spans.get();
  s->first_page = first;
  s->num_pages = n;
  s->released = true;  // fresh anonymous memory: not resident, reads as zero
  insert_free(s);
  return true;
}

// Takes a free span of at least `pages` pages out of the sets (backed first: its
// pages are already resident), growing the heap if needed.
Span* take(size_t pages) {
  t_limit_hit = false;
  Span* s = best_fit(g_ph.sets[0], pages);
  if (!s) {
    // Released or new pages become resident: that is what the limit counts.
    if (g_ph.limit != 0 && resident() + (pages << kPageShift) > g_ph.limit) {
      t_limit_hit = true;
      return nullptr;
    }
    s = best_fit(g_ph.sets[1], pages);
  }
  if (!s) {
    if (!grow(pages)) return nullptr;
    s = best_fit(g_ph.sets[1], pages);
    if (!s) s = best_fit(g_ph.sets[0], pages);
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
  Span* s = take(pages + extra);
  if (!s) return nullptr;
  if (align_pages > 1) {
    uintptr_t aligned = (s->first_page + extra) & ~static_cast<uintptr_t>(extra);
    if (size_t lead = aligned - s->first_page) {
      Span* head = g_ph.spans.get();
      head->first_page = s->first_page;
      head->num_pages = lead;
      head->released = s->released;
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
  g_ph.large_bytes += s->bytes();
  ++g_ph.large_count;
  note_in_use();
  return s;
}

void page_heap_free_large(Span* s) {
  LockGuard g(g_ph.lock);
  g_ph.large_bytes -= s->bytes();
  --g_ph.large_count;
  insert_free(s);
}

Span* page_heap_alloc_small(uint32_t cl) {
  const SizeClassInfo& info = class_info(cl);
  LockGuard g(g_ph.lock);
  Span* s = take(info.pages);
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
  g_ph.small_span_bytes += s->bytes();
  note_in_use();
  return s;
}

void page_heap_free_small(Span* s) {
  LockGuard g(g_ph.lock);
  for (size_t i = 0; i < s->num_pages; ++i) pagemap_set_small_info(s->first_page + i, 0);
  g_ph.small_span_bytes -= s->bytes();
  s->size_class = 0;
  insert_free(s);
}

namespace {

// Backed free spans freed before the cutoff, at most `max` of them, taken out
// of the lists (state kReleasing) so they can be madvised without the lock.
size_t take_idle(uint64_t freed_before_ns, Span** out, size_t max) {
  FreeSet& backed = g_ph.sets[0];
  size_t n = 0;
  auto scan = [&](IntrusiveList<Span>& list) {
    for (Span* s = list.front(); s && n < max;) {
      Span* next = s->list_next;
      if (s->free_since_ns < freed_before_ns) {
        unlink_free(s);
        s->state = Span::kReleasing;
        out[n++] = s;
      }
      s = next;
    }
  };
  scan(backed.large);
  for (size_t p = kMaxExactPages; p >= 1 && n < max; --p) scan(backed.exact[p]);
  return n;
}

}  // namespace

size_t page_heap_release(uint64_t freed_before_ns) {
  // Batches of 64 spans: the lock is dropped for the madvise calls (a 1 GiB
  // madvise takes milliseconds), and every allocation may proceed meanwhile.
  constexpr size_t kBatch = 64;
  Span* batch[kBatch];
  size_t released = 0;
  for (;;) {
    size_t n;
    {
      LockGuard g(g_ph.lock);
      n = take_idle(freed_before_ns, batch, kBatch);
    }
    if (n == 0) break;
    bool ok[kBatch];
    for (size_t i = 0; i < n; ++i) ok[i] = os::release(reinterpret_cast<void*>(batch[i]->start()), batch[i]->bytes());
    bool refused = false;
    LockGuard g(g_ph.lock);
    for (size_t i = 0; i < n; ++i) {
      Span* s = batch[i];
      if (ok[i]) {
        released += s->bytes();
        s->released = true;
      }
      refused |= !ok[i];
      insert_free(s);  // coalesces with released neighbours
    }
    // A refusal (e.g. mlock'ed pages) would be refused again: stop this pass.
    if (n < kBatch || refused) break;
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
  st.free_bytes = g_ph.sets[0].bytes;
  st.released_bytes = g_ph.sets[1].bytes;
  st.small_span_bytes = g_ph.small_span_bytes;
  st.large_bytes = g_ph.large_bytes;
  st.large_count = g_ph.large_count;
  st.peak_in_use_bytes = g_ph.peak_in_use;
  st.resident_bytes = resident();
  st.resident_peak = g_ph.resident_peak;
  for (FreeSet& fs : g_ph.sets) {
    for (size_t p = 1; p <= kMaxExactPages; ++p) {
      st.free_spans += fs.exact[p].size();
      if (!fs.exact[p].empty() && (p << kPageShift) > st.largest_free_bytes)
        st.largest_free_bytes = p << kPageShift;
    }
    for (Span* s = fs.large.front(); s; s = s->list_next) {
      ++st.free_spans;
      if (s->bytes() > st.largest_free_bytes) st.largest_free_bytes = s->bytes();
    }
  }
  return st;
}

void page_heap_lock_for_fork() { g_ph.lock.lock_unchecked(); }
void page_heap_unlock_after_fork(bool child) {
  if (child)
    g_ph.lock.reset_in_child();
  else
    g_ph.lock.unlock_unchecked();
}

}  // namespace am

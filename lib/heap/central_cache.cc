// CentralCache implementation (see central_cache.h).
#include "heap/central_cache.h"

#include <atomic>

#include "base/intrusive_list.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "core/free_link.h"
#include "heap/page_heap.h"
#include "core/pagemap.h"
#include "core/size_class.h"

namespace am {
namespace {

struct alignas(kCacheLine) CentralFreeList {
  SpinLock lock{LockRank::kCentral};
  IntrusiveList<Span> nonempty;
  size_t spans = 0;
  size_t free_objects = 0;
  // Read by stats without the lock.
  std::atomic<size_t> lock_acquisitions{0};
};

constinit CentralFreeList g_central[kNumClasses];

void lock_list(CentralFreeList& c) {
  c.lock.lock();
  c.lock_acquisitions.store(c.lock_acquisitions.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
}

// One object out of a span that has one (free list first, then never-used space).
void* pop_from_span(Span* s, size_t size) {
  void* obj = s->free_objects;
  if (obj) {
    s->free_objects = link_next(obj);
  } else {
    obj = reinterpret_cast<void*>(s->start() + static_cast<size_t>(s->bump) * size);
    ++s->bump;
    harden_mark_free(obj);  // every object on a list carries its marker
  }
  ++s->in_use;
  return obj;
}

bool span_has_free(const Span* s, uint32_t objects) {
  return s->free_objects != nullptr || s->bump < objects;
}

}  // namespace

int central_remove_range(uint32_t cl, void** head, int n, HeapStatus* status) {
  CentralFreeList& c = g_central[cl];
  const SizeClassInfo& info = class_info(cl);
  void* first = nullptr;
  void* last = nullptr;
  int got = 0;
  lock_list(c);
  while (got < n) {
    Span* s = c.nonempty.front();
    if (!s) {
      s = page_heap_alloc_small(cl, status);
      if (!s) break;
      ++c.spans;
      c.free_objects += info.objects;
      c.nonempty.push_front(s);
      s->in_nonempty = true;
    }
    while (got < n && span_has_free(s, info.objects)) {
      void* obj = pop_from_span(s, info.size);
      if (last != nullptr)
        link_set(last, obj);
      else
        first = obj;
      last = obj;
      ++got;
    }
    if (!span_has_free(s, info.objects)) {
      c.nonempty.remove(s);
      s->in_nonempty = false;
    }
  }
  c.free_objects -= static_cast<size_t>(got);
  c.lock.unlock();
  if (last != nullptr) link_set(last, nullptr);
  *head = first;
  return got;
}

void central_insert_range(uint32_t cl, void* head, int n) {
  CentralFreeList& c = g_central[cl];
  const SizeClassInfo& info = class_info(cl);
  lock_list(c);
  for (int i = 0; i < n; ++i) {
    void* obj = head;
    head = link_next(obj);
    Span* s = pagemap_span(reinterpret_cast<uintptr_t>(obj));
    // The fast path already validated class and object start via the pagemap's
    // small info; a span that disagrees means the heap is corrupt.
    if (s == nullptr || s->state != Span::kSmall || s->size_class != cl) {
      c.lock.unlock();
      fatal_invalid_pointer("free", obj);
    }
    if (s->in_use == 0) {  // more frees than allocations from this span
      c.lock.unlock();
      fatal_double_free("free", obj);
    }
    link_set(obj, s->free_objects);
    s->free_objects = obj;
    --s->in_use;
    ++c.free_objects;
    if (s->in_use == 0) {
      if (s->in_nonempty) c.nonempty.remove(s);
      s->in_nonempty = false;
      --c.spans;
      c.free_objects -= info.objects;
      page_heap_free_small(s);
    } else if (!s->in_nonempty) {
      c.nonempty.push_front(s);
      s->in_nonempty = true;
    }
  }
  c.lock.unlock();
}

CentralClassStats central_class_stats(uint32_t cl) {
  CentralFreeList& c = g_central[cl];
  CentralClassStats st;
  c.lock.lock();
  st.spans = c.spans;
  st.free_objects = c.free_objects;
  c.lock.unlock();
  st.lock_acquisitions = c.lock_acquisitions.load(std::memory_order_relaxed);
  return st;
}

size_t central_free_bytes() {
  size_t total = 0;
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& info = class_info(cl);
    CentralClassStats st = central_class_stats(cl);
    size_t tail = (info.pages << kPageShift) - static_cast<size_t>(info.objects) * info.size;
    total += st.free_objects * info.size + st.spans * tail;
  }
  return total;
}

size_t central_lock_acquisitions() {
  size_t total = 0;
  for (CentralFreeList& c : g_central) total += c.lock_acquisitions.load(std::memory_order_relaxed);
  return total;
}

void central_reset_counters() {
  for (CentralFreeList& c : g_central) c.lock_acquisitions.store(0, std::memory_order_relaxed);
}

void central_lock_all_for_fork() {
  for (CentralFreeList& c : g_central) c.lock.lock_unchecked();
}

void central_unlock_all_after_fork(bool child) {
  for (CentralFreeList& c : g_central) c.lock.unlock_after_fork(child);
}

}  // namespace am

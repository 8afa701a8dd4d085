// The allocation fast path: small, inline, one branch to the slow path.
//
// malloc(n), n <= 256 KiB: class from a table, pop from this thread's list.
// free(p): class and object-start check from the pagemap's small info (no span
// access), push onto this thread's list while it has room and p is not its
// head already (a double free with no allocation in between: caught by
// default, two instructions).
// Everything else (empty or full list, uninitialised or dead thread, large
// objects, NULL, invalid pointers) is one call into the slow path. An all-zero
// thread cache has no objects and no room, so initialisation needs no branch of
// its own.
//
// Hardening (harden.h) costs it nothing: the class index and the object-start
// test come from g_fast_route, which hardening reroutes to the miss paths.
//
// Observability costs the fast path one thing: malloc subtracts the request
// from the thread's sampling countdown (`sub` + `js`; sampler.h). Hooks and the
// heap checker add nothing here: they put every thread in bypass mode, so every
// operation reaches the miss paths below, which call them. Each entry point
// passes its API (am_api, a compile-time constant) down; it only becomes an
// immediate argument of the slow calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"
#include "front/harden.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "heap/thread_cache.h"

namespace am {

using Api = am_api;

// The fast paths' way out (alloc_slow.cc). In the entry section: they sit
// between the program and a captured stack (base/attributes.h). Two misses,
// one per direction, whatever the reason (empty or full list, sampling due,
// hooks or the leak checker observing, hardening, a thread without a cache,
// uninitialised process, NULL, large or invalid pointer): each finds the reason
// again itself, so the fast paths keep nothing live across the call.
AM_NOINLINE AM_ENTRY_SECTION void* alloc_miss(size_t size, Api api);
AM_NOINLINE AM_ENTRY_SECTION void free_miss(void* p, Api api);
// What really differs: requests above the small sizes, and alignments beyond
// 16 bytes (size classes where they fit, else large).
AM_NOINLINE AM_ENTRY_SECTION void* alloc_large(size_t size, size_t align, Api api);
AM_NOINLINE AM_ENTRY_SECTION void* alloc_aligned(size_t size, size_t align, Api api);

// Subtracts size from the thread's sampling countdown; true when it went below
// zero (sampler.h decides whether this allocation is sampled and re-arms).
AM_ALWAYS_INLINE bool sample_countdown(ThreadCache& tc, size_t size) {
#if defined(__x86_64__) && !defined(AM_TSAN)
  // Exactly `sub %reg, mem` + `js` (mem is %fs:off with initial-exec TLS): GCC
  // would load, subtract, store and test.
  // No output operand: GCC 12 drops the jump target of an asm goto with
  // outputs; the "memory" clobber tells it the countdown changed instead.
  asm goto("subq %1, %0\n\tjs %l[fire]" : : "m"(tc.sample_left), "r"(size) : "cc", "memory" : fire);
  return false;
fire:
  return true;
#else
  tc.sample_left -= static_cast<int64_t>(size);
  return tc.sample_left < 0;
#endif
}

// Pops the head of the list at `offset` bytes into the thread's lists, or
// returns nullptr (the list is empty: the caller's miss path).
AM_ALWAYS_INLINE void* pop_list(ThreadCache& tc, size_t offset) {
  FreeList& fl = *reinterpret_cast<FreeList*>(reinterpret_cast<char*>(tc_begin(tc)) + offset);
  void* head = fl.head;
  if (AM_LIKELY(head != nullptr)) {
    fl.head = *static_cast<void**>(head);
    owner_store(fl.slack, fl.slack - 1);
  }
  tc_end(tc);
  return head;
}

AM_ALWAYS_INLINE void* alloc_fast(size_t size, Api api) {
  if (AM_LIKELY(size <= kMaxSmallSize)) {
    ThreadCache& tc = tls_ref(tls_cache);
    if (AM_UNLIKELY(sample_countdown(tc, size))) return alloc_miss(size, api);
    void* p = pop_list(tc, g_fast_route.list_offset[class_index(size)]);
    return AM_LIKELY(p != nullptr) ? p : alloc_miss(size, api);
  }
  return alloc_large(size, kPageSize, api);
}

// If p is the start of a small object, sets *cl to its class and returns true;
// false for everything else (large, NULL, foreign, interior: the slow path
// decides). Reads only the pagemap, never the span. `gate` is the size-class
// table's (kSizeClasses.free_gate) or, on the free fast path, the route's.
AM_ALWAYS_INLINE bool small_object(void* p, uint32_t* cl, const FreeGate* gate = kSizeClasses.free_gate.data()) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uintptr_t root = a >> (kPageShift + kLeafBits);
  if (AM_UNLIKELY(root >= kRootSize)) return false;  // at or above 2^48: never ours
  PageMapLeaf* leaf = g_pagemap_root[root].load(std::memory_order_acquire);
  if (AM_UNLIKELY(leaf == nullptr)) return false;
  uint32_t info = leaf->small_info[pagemap_slot(a)];
  *cl = info & 0xff;
  // The offset from the span start must be an object's start: one multiply and
  // one compare (FreeGate, size_class.h), which also reject class 0 pages and
  // the span's unused tail.
  uint64_t offset = (info >> 8) + (a & kPageMask);
  const FreeGate& g = gate[*cl];
  return offset * g.magic < g.limit;
}

// Class of a small object pointer, or 0.
AM_ALWAYS_INLINE uint32_t small_class_of(void* p) {
  uint32_t cl;
  return small_object(p, &cl) ? cl : 0;
}

// Whether small object p of class cl heads this thread's list of its class:
// freed already, with no allocation of the class since. free_fast makes the
// same test inline; realloc makes it before keeping a block in place, where
// no free would see it.
AM_ALWAYS_INLINE bool small_freed_at_head(void* p, uint32_t cl) {
  ThreadCache& tc = tls_cache;
  bool freed = tc_begin(tc)[cl].head == p;
  tc_end(tc);
  return freed;
}

AM_ALWAYS_INLINE void free_fast(void* p, Api api) {
  uint32_t cl;
  if (AM_LIKELY(small_object(p, &cl, g_fast_route.gate.data()))) {
    ThreadCache& tc = tls_ref(tls_cache);
    FreeList& fl = tc_begin(tc)[cl];
    if (AM_LIKELY(list_take_one(fl))) {
      void* head = fl.head;
      // Double free, default mode: p freed again with no allocation of its
      // class in between is still the head (`cmp` + `jne`). Cold path: undo
      // the count; the slow path finds p at the head again and reports it.
      if (AM_LIKELY(head != p)) {
        *static_cast<void**>(p) = head;
        fl.head = p;
        tc_end(tc);
        return;
      }
      owner_store(fl.slack, fl.slack - 1);
    } else {
      owner_store(fl.slack, 0);
    }
    tc_end(tc);
  }
  free_miss(p, api);
}


}  // namespace am

namespace am {

// operator new: the fast path, then the new-handler loop (cpp_new.cc) on failure.
AM_NOINLINE AM_ENTRY_SECTION void* new_slow(size_t size, size_t align, bool nothrow, Api api);
AM_ALWAYS_INLINE void* new_fast(size_t size, Api api) {
  void* p = alloc_fast(size, api);
  return AM_LIKELY(p != nullptr) ? p : new_slow(size, 0, false, api);
}

}  // namespace am

namespace am {

// Sized free (C++ sized delete). The pagemap already names the class, so the
// size adds nothing the check needs; it takes the same path as free.
AM_ALWAYS_INLINE void free_sized_fast(void* p, size_t, Api api) { free_fast(p, api); }

AM_ALWAYS_INLINE void* new_nothrow_fast(size_t size, Api api) {
  void* p = alloc_fast(size, api);
  return AM_LIKELY(p != nullptr) ? p : new_slow(size, 0, true, api);
}

AM_ALWAYS_INLINE void* new_aligned(size_t size, size_t align, bool nothrow, Api api) {
  void* p = alloc_aligned(size, align, api);
  return AM_LIKELY(p != nullptr) ? p : new_slow(size, align, nothrow, api);
}

}  // namespace am

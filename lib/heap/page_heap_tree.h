// SpanTree: an intrusive treap of spans, the page heap's ordered index of its
// free spans longer than the exact lists (by size for best fit, by free time
// for the growth offset and the scavenger).
//
// Owns nothing: the links are in the Span record (Span::by_size, Span::by_age;
// a SpanTreeLinks member named by the template argument), so insertion and
// removal never allocate. Priorities are a hash of the record's address (stable
// while the span is in the tree, random enough for expected O(log n) depth:
// records come from a pool in address order, the hash scatters them).
// Invariants: in-order is ascending by Less (a strict total order: ties are
// broken by address in the callers' Less); a span's key fields do not change
// while it is in the tree (the page heap unlinks before it splits, merges or
// re-stamps a span). Lock: the caller's (the page-heap lock).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/span.h"

namespace am::ph {

template <SpanTreeLinks Span::*L, class Less>
class SpanTree {
 public:
  constexpr SpanTree() = default;

  size_t size() const { return size_; }
  bool empty() const { return root_ == nullptr; }

  void insert(Span* x) {
    SpanTreeLinks& lx = at(x);
    lx = SpanTreeLinks{};
    Span* p = nullptr;
    Span** link = &root_;
    while (*link) {
      p = *link;
      link = Less{}(x, p) ? &at(p).left : &at(p).right;
    }
    *link = x;
    lx.parent = p;
    ++size_;
    while (lx.parent && prio(lx.parent) < prio(x)) rotate_up(x);
  }

  void erase(Span* x) {
    SpanTreeLinks& lx = at(x);
    // Rotated down until it has at most one child, then spliced out.
    while (lx.left && lx.right) rotate_up(prio(at(x).left) > prio(at(x).right) ? lx.left : lx.right);
    Span* c = lx.left ? lx.left : lx.right;
    if (c) at(c).parent = lx.parent;
    replace_child(lx.parent, x, c);
    lx = SpanTreeLinks{};
    --size_;
  }

  // The first span (in order) for which below(span) is false; below must be
  // true for a prefix of the order and false after it. nullptr if none.
  template <class Below>
  Span* first_not(Below below) const {
    Span* r = nullptr;
    for (Span* n = root_; n;) {
      if (below(n)) {
        n = at(n).right;
      } else {
        r = n;
        n = at(n).left;
      }
    }
    return r;
  }

  Span* first() const {
    Span* n = root_;
    while (n && at(n).left) n = at(n).left;
    return n;
  }
  Span* last() const {
    Span* n = root_;
    while (n && at(n).right) n = at(n).right;
    return n;
  }
  static Span* next(Span* x) {
    if (Span* r = at(x).right) {
      while (at(r).left) r = at(r).left;
      return r;
    }
    Span* p = at(x).parent;
    while (p && at(p).right == x) {
      x = p;
      p = at(p).parent;
    }
    return p;
  }

  // Forgets every element (fork child, reset); the elements' links are stale.
  void clear() {
    root_ = nullptr;
    size_ = 0;
  }

 private:
  static SpanTreeLinks& at(Span* s) { return s->*L; }
  static uint64_t prio(const Span* s) {
    uint64_t z = reinterpret_cast<uintptr_t>(s);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  void replace_child(Span* p, Span* old, Span* c) {
    if (p == nullptr)
      root_ = c;
    else if (at(p).left == old)
      at(p).left = c;
    else
      at(p).right = c;
  }
  // Rotates x above its parent.
  void rotate_up(Span* x) {
    SpanTreeLinks& lx = at(x);
    Span* p = lx.parent;
    SpanTreeLinks& lp = at(p);
    Span* g = lp.parent;
    if (lp.left == x) {
      lp.left = lx.right;
      if (lx.right) at(lx.right).parent = p;
      lx.right = p;
    } else {
      lp.right = lx.left;
      if (lx.left) at(lx.left).parent = p;
      lx.left = p;
    }
    lp.parent = x;
    lx.parent = g;
    replace_child(g, p, x);
  }

  Span* root_ = nullptr;
  size_t size_ = 0;
};

// Best fit: smallest first, then the lowest address.
struct BySize {
  bool operator()(const Span* a, const Span* b) const {
    return a->num_pages != b->num_pages ? a->num_pages < b->num_pages : a->first_page < b->first_page;
  }
};
// Longest idle first, then the lowest address.
struct ByAge {
  bool operator()(const Span* a, const Span* b) const {
    return a->free_since_ns != b->free_since_ns ? a->free_since_ns < b->free_since_ns
                                                : a->first_page < b->first_page;
  }
};

using SizeTree = SpanTree<&Span::by_size, BySize>;
using AgeTree = SpanTree<&Span::by_age, ByAge>;

}  // namespace am::ph

// Metadata arena: memory for ammalloc's own bookkeeping, straight from the OS.
//
// Owns: a bump allocator over 1 MiB chunks (never freed: span records are
// recycled through ObjectPool instead), and the byte count reported as "malloc
// metadata". Lock: LockRank::kMeta, a leaf (nothing is taken inside).
// Invariant: nothing here ever calls malloc; every byte comes from os::map_aligned.
// Out of memory: when the OS refuses a chunk (RLIMIT_AS, overcommit mode 2,
// the map count), meta_alloc, meta_alloc_pages and ObjectPool::get return
// nullptr and change nothing; the caller fails its one request (the heap's
// structure is untouched: every caller gets its metadata before it changes
// anything) and a later call asks the OS again.
#pragma once

#include <cstddef>
#include <new>

#include "base/spinlock.h"

namespace am {

// Zeroed memory of `size` bytes aligned to 64; nullptr if the OS refused a
// chunk for it.
void* meta_alloc(size_t size);
// Large zeroed metadata (pagemap leaves) mapped on its own; counted the same
// way. nullptr if the OS refused.
void* meta_alloc_pages(size_t size);
size_t meta_bytes();  // bytes mapped for metadata
void meta_lock_for_fork();
void meta_unlock_after_fork(bool child);

// Fixed-size object recycling for metadata records. The caller's lock protects
// the pool (e.g. spans are only created and destroyed under the page-heap lock).
// get() returns nullptr when the pool is empty and the arena has no memory;
// reserve(n) fills the pool first, so that an operation needing up to n
// records can fail before it changes anything and then get() cannot fail.
template <typename T>
class ObjectPool {
 public:
  constexpr ObjectPool() = default;
  T* get() {
    if (free_ == nullptr && !reserve(1)) return nullptr;
    Node* n = free_;
    free_ = n->next;
    --free_count_;
    return new (n) T();
  }
  // At least n records free in the pool; false if the arena could not give
  // them (those it gave stay in the pool).
  bool reserve(size_t n) {
    while (free_count_ < n) {
      void* m = meta_alloc(kRecordSize);
      if (m == nullptr) return false;
      Node* node = static_cast<Node*>(m);
      node->next = free_;
      free_ = node;
      ++free_count_;
    }
    return true;
  }
  void put(T* t) {
    t->~T();
    Node* n = reinterpret_cast<Node*>(t);
    n->next = free_;
    free_ = n;
    ++free_count_;
  }
  size_t free_count() const { return free_count_; }

 private:
  struct Node {
    Node* next;
  };
  static constexpr size_t kRecordSize = sizeof(T) < sizeof(Node) ? sizeof(Node) : sizeof(T);
  Node* free_ = nullptr;
  size_t free_count_ = 0;
};

}  // namespace am

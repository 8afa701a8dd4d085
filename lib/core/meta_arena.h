// Metadata arena: memory for ammalloc's own bookkeeping, straight from the OS.
//
// Owns: a bump allocator over 1 MiB chunks (never freed: spans and thread-cache
// records are recycled through ObjectPool instead), and the byte count reported
// as "malloc metadata". Lock: LockRank::kMeta, a leaf (nothing is taken inside).
// Invariant: nothing here ever calls malloc; every byte comes from os::map_aligned.
#pragma once

#include <cstddef>
#include <new>

#include "base/spinlock.h"

namespace am {

// Zeroed memory of `size` bytes aligned to 64; aborts if the OS refuses (running
// out of metadata is not recoverable: the heap's structure would be lost).
void* meta_alloc(size_t size);
// Large zeroed metadata (pagemap leaves) mapped on its own; counted the same way.
void* meta_alloc_pages(size_t size);
size_t meta_bytes();  // bytes mapped for metadata
void meta_lock_for_fork();
void meta_unlock_after_fork(bool child);

// Fixed-size object recycling for metadata records. The caller's lock protects
// the pool (e.g. spans are only created and destroyed under the page-heap lock).
template <typename T>
class ObjectPool {
 public:
  constexpr ObjectPool() = default;
  T* get() {
    if (free_) {
      Node* n = free_;
      free_ = n->next;
      --free_count_;
      return new (n) T();
    }
    return new (meta_alloc(sizeof(T) < sizeof(Node) ? sizeof(Node) : sizeof(T))) T();
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
  Node* free_ = nullptr;
  size_t free_count_ = 0;
};

}  // namespace am

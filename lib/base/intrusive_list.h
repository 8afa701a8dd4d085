// Intrusive doubly linked list: the only container inside ammalloc.
//
// Owns nothing: elements (spans, thread caches) carry their own links, so
// insertion and removal never allocate. T must have `T* list_prev; T* list_next;`.
// The list is circular through a sentinel-free head pointer; an element is in at
// most one list at a time (checked by the links being null when unlinked).
#pragma once

#include <cstddef>

namespace am {

template <typename T>
class IntrusiveList {
 public:
  constexpr IntrusiveList() = default;

  bool empty() const { return head_ == nullptr; }
  T* front() const { return head_; }
  size_t size() const { return size_; }

  void push_front(T* e) {
    e->list_prev = nullptr;
    e->list_next = head_;
    if (head_) head_->list_prev = e;
    head_ = e;
    ++size_;
  }

  void remove(T* e) {
    if (e->list_prev)
      e->list_prev->list_next = e->list_next;
    else
      head_ = e->list_next;
    if (e->list_next) e->list_next->list_prev = e->list_prev;
    e->list_prev = e->list_next = nullptr;
    --size_;
  }

  T* pop_front() {
    T* e = head_;
    if (e) remove(e);
    return e;
  }

  // Forgets every element (fork child, reset); the elements' links are stale.
  void clear() {
    head_ = nullptr;
    size_ = 0;
  }

 private:
  T* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace am

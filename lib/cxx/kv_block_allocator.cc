// KVBlockAllocator (kv_block_allocator.h): slabs from the am_* heap, blocks
// from the lowest non-full slab, empty slabs returned beyond the spares.
#include "kv_block_allocator.h"

#include <bit>

#include "ammalloc/ammalloc.h"

namespace ammalloc::detail {

KVBlockAllocator::KVBlockAllocator(std::size_t block_bytes, std::size_t slab_bytes, std::size_t max_slabs,
                                   std::size_t spare_slabs)
    : block_bytes_(block_bytes),
      slab_bytes_(slab_bytes),
      per_slab_(static_cast<std::uint32_t>(slab_bytes / block_bytes)),
      spare_slabs_(spare_slabs),
      base_(max_slabs, nullptr),
      free_(max_slabs),
      nonfull_((max_slabs + 63) / 64, 0) {}

KVBlockAllocator::~KVBlockAllocator() {
  for (std::byte* b : base_) ::am_free(b);
}

void KVBlockAllocator::set_nonfull(std::size_t slot, bool on) noexcept {
  const std::uint64_t bit = std::uint64_t{1} << (slot % 64);
  if (on)
    nonfull_[slot / 64] |= bit;
  else
    nonfull_[slot / 64] &= ~bit;
}

std::int64_t KVBlockAllocator::add_slab() {
  std::size_t slot = 0;
  while (slot < base_.size() && base_[slot] != nullptr) ++slot;
  if (slot == base_.size()) return -1;
  // The stack's capacity is reserved before the slab exists, so a failure
  // here leaves nothing half-built, and give() never needs to grow it.
  std::vector<std::uint32_t>& st = free_[slot];
  st.reserve(per_slab_);
  void* p = ::am_memalign(kSlabAlign, slab_bytes_);
  if (p == nullptr) return -1;
  base_[slot] = static_cast<std::byte*>(p);
  st.clear();
  // Pushed high to low so the stack pops block 0 first: a slab fills in
  // address order and its untouched tail pages stay unfaulted.
  for (std::uint32_t i = per_slab_; i-- > 0;) st.push_back(i);
  set_nonfull(slot, true);
  ++slabs_;
  ++empty_slabs_;
  ++slabs_allocated_;
  return static_cast<std::int64_t>(slot);
}

void KVBlockAllocator::free_slab(std::size_t slot) noexcept {
  ::am_free(base_[slot]);
  base_[slot] = nullptr;
  free_[slot].clear();
  set_nonfull(slot, false);
  --slabs_;
  --empty_slabs_;
  ++slabs_freed_;
}

std::int64_t KVBlockAllocator::empty_slot() const noexcept {
  if (empty_slabs_ == 0) return -1;
  for (std::size_t slot = 0; slot < base_.size(); ++slot)
    if (base_[slot] != nullptr && free_[slot].size() == per_slab_) return static_cast<std::int64_t>(slot);
  return -1;
}

std::int64_t KVBlockAllocator::lowest_nonfull() const noexcept {
  for (std::size_t w = 0; w < nonfull_.size(); ++w)
    if (nonfull_[w] != 0) return static_cast<std::int64_t>(w * 64 + static_cast<std::size_t>(std::countr_zero(nonfull_[w])));
  return -1;
}

std::uint32_t KVBlockAllocator::take_from(std::size_t slot) noexcept {
  std::vector<std::uint32_t>& st = free_[slot];
  if (st.size() == per_slab_) --empty_slabs_;
  const std::uint32_t index = st.back();
  st.pop_back();
  if (st.empty()) set_nonfull(slot, false);
  ++in_use_;
  return static_cast<std::uint32_t>(slot) * per_slab_ + index;
}

std::int64_t KVBlockAllocator::take(std::int64_t hint_slot, bool fresh_ok, bool* heap_refused) {
  *heap_refused = false;
  std::int64_t slot = -1;
  if (hint_slot >= 0 && static_cast<std::size_t>(hint_slot) < base_.size() && base_[hint_slot] != nullptr &&
      !free_[hint_slot].empty())
    slot = hint_slot;
  if (slot < 0) slot = empty_slot();
  if (slot < 0 && fresh_ok && slabs_ < base_.size()) slot = add_slab();
  if (slot < 0) slot = lowest_nonfull();
  if (slot < 0 && slabs_ < base_.size()) {
    slot = add_slab();
    *heap_refused = slot < 0;
  }
  if (slot < 0) return -1;
  return take_from(static_cast<std::size_t>(slot));
}

void KVBlockAllocator::give(std::uint32_t id) noexcept {
  const std::size_t slot = id / per_slab_;
  std::vector<std::uint32_t>& st = free_[slot];
  if (st.empty()) set_nonfull(slot, true);
  st.push_back(id % per_slab_);  // within the reserved capacity: no allocation
  --in_use_;
  if (st.size() == per_slab_) {
    ++empty_slabs_;
    if (empty_slabs_ > spare_slabs_) free_slab(slot);
  }
}

std::size_t KVBlockAllocator::release_empty() noexcept {
  std::size_t bytes = 0;
  for (std::size_t slot = 0; slot < base_.size() && empty_slabs_ > 0; ++slot) {
    if (base_[slot] != nullptr && free_[slot].size() == per_slab_) {
      free_slab(slot);
      bytes += slab_bytes_;
    }
  }
  return bytes;
}

}  // namespace ammalloc::detail

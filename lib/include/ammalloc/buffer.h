// Buffer<T>: a move-only, 64-byte aligned array of T owned through any
// ammalloc::Allocator (FloatArray = Buffer<float>, the seed's RAII float
// buffer).
//
// Buffer(n, allocator) allocates n elements with allocator.allocate() and
// zero-fills them, like std::vector<T>(n); Buffer::uninitialized skips the
// fill (activations about to be overwritten). The memory is held in a DataPtr,
// so it is freed by the deleter of the allocator that made it, whatever is
// registered later. Alignment: CPUAllocator and AmmallocAllocator return
// 64-byte aligned blocks; for any other allocator whose block is not aligned,
// Buffer asks again for n * sizeof(T) + 63 bytes and aligns inside it.
//
// T must be trivially copyable and trivially destructible (tensor elements):
// no constructors or destructors run.
//
// The RAIIWrapper of the seed design: a raw block of an allocator that has a
// raw_deleter() is owned RAII-style by std::unique_ptr with that deleter, e.g.
//     ammalloc::RawPtr<float> p = ammalloc::make_raw<float>(ammalloc::ammalloc_allocator(), 1024);
// which is std::unique_ptr<float[], DeleterFnPtr>; Buffer<T> adds the size,
// the alignment guarantee and allocators without a raw deleter.
#ifndef AMMALLOC_BUFFER_H
#define AMMALLOC_BUFFER_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "ammalloc/allocator.h"

namespace ammalloc {

template <typename T>
class Buffer {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "Buffer<T> holds trivially copyable, trivially destructible elements");
  static_assert(alignof(T) <= kAlignment, "Buffer<T> aligns to 64 bytes");

 public:
  Buffer() noexcept = default;
  explicit Buffer(std::size_t n, Allocator& allocator = ammalloc_allocator()) : Buffer(n, allocator, true) {}
  static Buffer uninitialized(std::size_t n, Allocator& allocator = ammalloc_allocator()) {
    return Buffer(n, allocator, false);
  }

  Buffer(Buffer&& o) noexcept : data_(std::move(o.data_)), size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      data_ = std::move(o.data_);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() noexcept { return static_cast<T*>(data_.get()); }
  const T* data() const noexcept { return static_cast<const T*>(data_.get()); }
  std::size_t size() const noexcept { return size_; }
  std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }
  std::span<T> span() noexcept { return {data(), size_}; }
  std::span<const T> span() const noexcept { return {data(), size_}; }
  const DataPtr& data_ptr() const noexcept { return data_; }
  // Frees now; the Buffer becomes empty.
  void reset() noexcept {
    data_.clear();
    size_ = 0;
  }

 private:
  Buffer(std::size_t n, Allocator& allocator, bool zero) : size_(n) {
    if (n == 0) return;
    if (n > SIZE_MAX / sizeof(T) - (kAlignment - 1)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    data_ = allocator.allocate(bytes);
    if (!aligned(data_.get())) {
      // Over-allocate and align inside; the context (what the deleter frees) stays the block.
      DataPtr raw = allocator.allocate(bytes + kAlignment - 1);
      const auto addr = reinterpret_cast<std::uintptr_t>(raw.get());
      void* ctx = raw.get_context();
      const DeleterFnPtr del = raw.get_deleter();
      const DeviceType dev = raw.device();
      (void)raw.release_context();
      data_ = DataPtr(reinterpret_cast<void*>((addr + kAlignment - 1) & ~(kAlignment - 1)), ctx, del, dev);
    }
    if (zero) std::memset(data_.get(), 0, bytes);
  }
  static bool aligned(const void* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) & (kAlignment - 1)) == 0; }

  DataPtr data_;
  std::size_t size_ = 0;
};

using FloatArray = Buffer<float>;

// The seed's RAIIWrapper: std::unique_ptr with the allocator's raw deleter.
template <typename T>
using RawPtr = std::unique_ptr<T[], DeleterFnPtr>;

// n elements (uninitialised) from allocator.raw_allocate, owned by a RawPtr.
// The allocator must have a raw_deleter() (both CPU allocators here do).
template <typename T>
RawPtr<T> make_raw(Allocator& allocator, std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);
  if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
  return RawPtr<T>(static_cast<T*>(allocator.raw_allocate(n * sizeof(T))), allocator.raw_deleter());
}

}  // namespace ammalloc

#endif  // AMMALLOC_BUFFER_H

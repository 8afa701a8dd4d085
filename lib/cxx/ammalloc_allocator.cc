// AmmallocAllocator: am_memalign(kAlignment) / am_free from libammalloc_core.
//
// Owns: its counters (one detail::Counters, shared by the single instance and
// its raw deleter, which only sees the pointer). Sizes are usable sizes
// (am_malloc_usable_size), so a free subtracts exactly what its allocation
// added. Uses only the am_* names, so it works in a process that does not
// preload ammalloc, beside the system malloc.
#include "ammalloc/ammalloc.h"

#include "ammalloc/allocator.h"
#include "counters.h"
#include "internal.h"

namespace ammalloc {
namespace {

constinit detail::Counters g_am_counters(detail::kAmAllocs, detail::kAmFrees);

void ammalloc_delete(void* p) noexcept {
  if (p == nullptr) return;
  g_am_counters.on_free(::am_malloc_usable_size(p));
  ::am_free(p);
}

}  // namespace

DataPtr AmmallocAllocator::allocate(std::size_t nbytes) {
  if (nbytes == 0) return DataPtr(nullptr, nullptr, &ammalloc_delete, DeviceType::CPU);
  void* p = ::am_memalign(kAlignment, nbytes);
  if (AM_CXX_UNLIKELY(p == nullptr)) detail::throw_allocation_error(nbytes, kAlignment, name());
  g_am_counters.on_alloc(::am_malloc_usable_size(p));
  return DataPtr(p, p, &ammalloc_delete, DeviceType::CPU);
}

DeleterFnPtr AmmallocAllocator::raw_deleter() const noexcept { return &ammalloc_delete; }

AllocatorStats AmmallocAllocator::stats() const noexcept {
  AllocatorStats s = g_am_counters.snapshot();
  std::size_t heap = 0;
  // The whole ammalloc heap of this process (every am_* user), from the OS.
  if (::am_get_numeric_property("generic.heap_size", &heap) != 0) s.reserved_bytes = heap;
  return s;
}

void AmmallocAllocator::reset_peak() noexcept { g_am_counters.reset_peak(); }

void AmmallocAllocator::reset() noexcept {
  g_am_counters.reset();
  // FR-4: empty every thread cache, return all free memory to the OS and zero
  // the heap's own counters (process-wide for the am_* heap).
  ::am_reset();
}

}  // namespace ammalloc

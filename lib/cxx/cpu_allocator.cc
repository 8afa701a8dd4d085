// CPUAllocator: the baseline, posix_memalign(kAlignment) / free.
//
// Owns: its counters (one detail::Counters, shared by the single instance and
// its raw deleter, which only sees the pointer). Sizes are usable sizes
// (malloc_usable_size), so a free subtracts exactly what its allocation added.
// Goes through whatever malloc the process has: glibc, or ammalloc itself when
// libammalloc.so is preloaded.
// The one file of lib/ that calls the system malloc (posix_memalign, free,
// malloc_usable_size, mallinfo2): being that baseline is its job.
#include <malloc.h>

#include <cstdlib>

#include "ammalloc/allocator.h"
#include "counters.h"
#include "internal.h"

namespace ammalloc {
namespace {

constinit detail::Counters g_cpu_counters(detail::kCpuAllocs, detail::kCpuFrees);

void cpu_delete(void* p) noexcept {
  if (p == nullptr) return;
  g_cpu_counters.on_free(::malloc_usable_size(p));
  std::free(p);
}

}  // namespace

DataPtr CPUAllocator::allocate(std::size_t nbytes) {
  if (nbytes == 0) return DataPtr(nullptr, nullptr, &cpu_delete, DeviceType::CPU);
  void* p = nullptr;
  if (AM_CXX_UNLIKELY(::posix_memalign(&p, kAlignment, nbytes) != 0 || p == nullptr))
    detail::throw_allocation_error(nbytes, kAlignment, name());
  g_cpu_counters.on_alloc(::malloc_usable_size(p));
  return DataPtr(p, p, &cpu_delete, DeviceType::CPU);
}

DeleterFnPtr CPUAllocator::raw_deleter() const noexcept { return &cpu_delete; }

AllocatorStats CPUAllocator::stats() const noexcept {
  AllocatorStats s = g_cpu_counters.snapshot();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // Process-wide: glibc's main and thread arenas plus mmapped chunks.
  const struct mallinfo2 mi = ::mallinfo2();
  s.reserved_bytes = mi.arena + mi.hblkhd;
#endif
  return s;
}

void CPUAllocator::reset_peak() noexcept { g_cpu_counters.reset_peak(); }

void CPUAllocator::reset() noexcept { g_cpu_counters.reset(); }

}  // namespace ammalloc

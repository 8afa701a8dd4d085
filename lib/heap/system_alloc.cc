// SystemAlloc implementation (see system_alloc.h).
#include "heap/system_alloc.h"

#include <atomic>

#include "core/config.h"
#include "heap/hugepage_map.h"
#include "core/numa_topology.h"
#include "os/os.h"

namespace am {
namespace {
constinit std::atomic<size_t> g_mapped{0};
}

SystemRegion system_alloc_region(size_t min_bytes, int partition) {
  size_t bytes = (min_bytes + kRegionAlign - 1) & ~(kRegionAlign - 1);
  if (bytes < min_bytes) return {};
  void* p = os::map_aligned(bytes, kRegionAlign);
  if (p == nullptr) return {};
  uintptr_t start = reinterpret_cast<uintptr_t>(p);
  if (!hugepage_map_region(start, bytes)) {
    os::unmap(p, bytes);
    return {};
  }
  // Both before the first touch: the kernel decides page size and node when a
  // page faults in.
  numa_bind_region(p, bytes, partition);
  thp_advise_region(p, bytes);
  g_mapped.fetch_add(bytes, std::memory_order_relaxed);
  return {start, bytes};
}

size_t system_mapped_bytes() { return g_mapped.load(std::memory_order_relaxed); }

}  // namespace am

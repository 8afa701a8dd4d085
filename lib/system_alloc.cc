// SystemAlloc implementation (see system_alloc.h).
#include "system_alloc.h"

#include <atomic>

#include "config.h"
#include "os/os.h"

namespace am {
namespace {
constinit std::atomic<size_t> g_mapped{0};
}

SystemRegion system_alloc_region(size_t min_bytes) {
  size_t bytes = (min_bytes + kRegionAlign - 1) & ~(kRegionAlign - 1);
  if (bytes < min_bytes) return {};
  void* p = os::map_aligned(bytes, kRegionAlign);
  if (p == nullptr) return {};
  g_mapped.fetch_add(bytes, std::memory_order_relaxed);
  return {reinterpret_cast<uintptr_t>(p), bytes};
}

size_t system_mapped_bytes() { return g_mapped.load(std::memory_order_relaxed); }

}  // namespace am

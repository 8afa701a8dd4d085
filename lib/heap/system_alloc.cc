// SystemAlloc implementation (see system_alloc.h).
#include "heap/system_alloc.h"

#include <atomic>

#include "base/log.h"
#include "core/config.h"
#include "heap/hugepage_map.h"
#include "core/numa_topology.h"
#include "core/pagemap.h"
#include "os/os.h"

namespace am {
namespace {

// Reservations: the first 1 GiB, each next one twice the last, up to 64 GiB
// (a 64 GiB heap takes 7 of them; the address space is 128 TiB).
constexpr size_t kFirstChunk = size_t{1} << 30;
constexpr size_t kMaxChunk = size_t{64} << 30;

constinit std::atomic<size_t> g_mapped{0};
constinit std::atomic<size_t> g_reserved{0};
// The current reservation's free part, [g_low, g_cur): regions are carved
// from its top down, because the kernel places new mappings top down: the
// next reservation, asked for right below g_low, continues the same mapping.
// Both kept complemented (Hidden): g_cur is the start of the newest region,
// often the address of an object, and the leak checker scans this module's
// data for pointers (a plain copy would keep a leaked object "reachable").
class Hidden {
 public:
  constexpr Hidden() = default;
  operator uintptr_t() const { return ~v_; }
  Hidden& operator=(uintptr_t a) {
    v_ = ~a;
    return *this;
  }
  Hidden& operator-=(uintptr_t d) { return *this = static_cast<uintptr_t>(*this) - d; }

 private:
  uintptr_t v_ = ~uintptr_t{0};
};
constinit Hidden g_low;
constinit Hidden g_cur;
constinit size_t g_next_chunk = kFirstChunk;
// Regions with a reservation of their own (start complemented, as above);
// beyond this many a region is still served but never unmapped.
constexpr size_t kMaxOwnRegions = 4096;
constinit SystemRegion g_own[kMaxOwnRegions];
constinit size_t g_own_count = 0;

// Commits [start, start + bytes) and applies the placement advice. False if
// the kernel refused the commit or memory for the leaves that will record the
// region (the range stays reserved, inaccessible, and nothing records it).
// The leaves of both maps come first: once a region is committed nothing can
// fail, so no committed region is ever left that the page heap does not hold.
bool commit_region(uintptr_t start, size_t bytes, int partition) {
  void* p = reinterpret_cast<void*>(start);
  if (!pagemap_ensure(start >> kPageShift, bytes >> kPageShift)) return false;
  if (!hugepage_map_prepare(start, bytes)) return false;
  if (!os::commit(p, bytes)) return false;
  hugepage_map_region(start, bytes);
  // Both before the first touch: the kernel decides page size and node when a
  // page faults in.
  numa_bind_region(p, bytes, partition);
  thp_advise_region(p, bytes);
  g_mapped.fetch_add(bytes, std::memory_order_relaxed);
  return true;
}

// Makes sure the current reservation has `bytes` free: extends it downwards
// in place, or starts a new one (the old one's free part is unmapped). The
// reservation shrinks by halves down to `bytes` when the kernel refuses the
// address space (RLIMIT_AS). False: nothing could be reserved.
bool ensure_reserved(size_t bytes) {
  if (g_cur - g_low >= bytes) return true;
  for (size_t chunk = g_next_chunk;; chunk /= 2) {
    if (chunk < bytes) chunk = bytes;
    if (g_low > chunk && os::reserve(chunk, kRegionAlign, g_low - chunk) != nullptr) {
      g_low -= chunk;  // contiguous: the same mapping grows downwards
    } else if (void* p = os::reserve(chunk, kRegionAlign)) {
      if (g_cur > g_low) os::unmap(reinterpret_cast<void*>(static_cast<uintptr_t>(g_low)), g_cur - g_low);
      g_reserved.fetch_sub(g_cur - g_low, std::memory_order_relaxed);
      g_low = reinterpret_cast<uintptr_t>(p);
      g_cur = g_low + chunk;
    } else {
      if (chunk == bytes) return false;
      continue;
    }
    g_reserved.fetch_add(chunk, std::memory_order_relaxed);
    if (g_next_chunk < kMaxChunk) g_next_chunk *= 2;
    return g_cur - g_low >= bytes;
  }
}

}  // namespace

SystemRegion system_alloc_region(size_t min_bytes, int partition) {
  size_t bytes = (min_bytes + kRegionAlign - 1) & ~(kRegionAlign - 1);
  if (bytes < min_bytes || bytes == 0) return {};
  if (!system_could_back(bytes)) return {};
  if (bytes >= kOwnReservationBytes) {
    // A reservation of its own: unmapped whole once free and idle
    // (system_free_region), not a hole in a shared one.
    void* p = os::reserve(bytes, kRegionAlign);
    if (p == nullptr) return {};
    uintptr_t start = reinterpret_cast<uintptr_t>(p);
    if (!commit_region(start, bytes, partition)) {
      os::unmap(p, bytes);  // a reservation that fails leaves nothing behind
      return {};
    }
    g_reserved.fetch_add(bytes, std::memory_order_relaxed);
    if (g_own_count < kMaxOwnRegions) {
      hugepage_mark_own_region(start, bytes);
      g_own[g_own_count++] = {~start, bytes};
    }
    return {start, bytes};
  }
  if (!ensure_reserved(bytes)) return {};
  uintptr_t start = g_cur - bytes;
  if (!commit_region(start, bytes, partition)) return {};  // stays reserved: tried again next time
  g_cur = start;
  return {start, bytes};
}

size_t system_own_regions() { return g_own_count; }
SystemRegion system_own_region(size_t i) { return {~g_own[i].start, g_own[i].bytes}; }

void system_forget_region(size_t i) {
  hugepage_unmap_region(~g_own[i].start, g_own[i].bytes);
  g_own[i] = g_own[--g_own_count];
}

void system_free_region(uintptr_t start, size_t bytes) {
  os::unmap(reinterpret_cast<void*>(start), bytes);
  g_mapped.fetch_sub(bytes, std::memory_order_relaxed);
  g_reserved.fetch_sub(bytes, std::memory_order_relaxed);
}

// Below 1 GiB the answer is yes without asking the kernel (two system calls):
// such a request costs nothing to try, and a reservation that fails fails cleanly.
bool system_could_back(size_t bytes) { return bytes < kOwnReservationBytes || bytes <= os::memory_ceiling(); }

size_t system_mapped_bytes() { return g_mapped.load(std::memory_order_relaxed); }
size_t system_reserved_bytes() { return g_reserved.load(std::memory_order_relaxed); }

// ---------------------------------------------------------------- guards --

namespace {
// The mprotect fallback splits a mapping in three per guard: at most this
// many (a quarter of the kernel's default vm.max_map_count of 65530).
constexpr size_t kGuardMprotectBudget = 16384;
constinit std::atomic<int> g_guard_mode{0};  // 0 unknown, 1 MADV_GUARD_INSTALL, 2 mprotect
constinit std::atomic<size_t> g_guard_mprotected{0};
constinit std::atomic<size_t> g_guard_skipped{0};
}  // namespace

bool system_guard_page(uintptr_t page_addr, bool install) {
  void* p = reinterpret_cast<void*>(page_addr);
  int mode = g_guard_mode.load(std::memory_order_relaxed);
  if (mode != 2) {
    int rc = install ? os::guard_install(p, kPageSize) : os::guard_remove(p, kPageSize);
    if (rc == 0) {
      if (mode == 0) g_guard_mode.store(1, std::memory_order_relaxed);
      return true;
    }
    if (mode == 1 || rc != -22 /* EINVAL: not this kernel */) return false;
    g_guard_mode.store(2, std::memory_order_relaxed);
  }
  if (!install) {
    bool ok = os::protect(p, kPageSize, true);
    if (ok) g_guard_mprotected.fetch_sub(1, std::memory_order_relaxed);
    return ok;
  }
  if (g_guard_mprotected.load(std::memory_order_relaxed) >= kGuardMprotectBudget || !os::protect(p, kPageSize, false)) {
    if (g_guard_skipped.fetch_add(1, std::memory_order_relaxed) == 0)
      log_warning("guard pages: mapping budget used (no MADV_GUARD_INSTALL in this kernel); "
                  "further large allocations have no guard page");
    return false;
  }
  g_guard_mprotected.fetch_add(1, std::memory_order_relaxed);
  return true;
}

size_t system_guard_pages_skipped() { return g_guard_skipped.load(std::memory_order_relaxed); }

}  // namespace am

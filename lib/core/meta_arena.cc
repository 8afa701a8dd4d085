// Metadata arena implementation (see meta_arena.h).
#include "core/meta_arena.h"

#include <atomic>
#include <cstdint>

#include "os/os.h"

namespace am {
namespace {

constexpr size_t kChunkSize = size_t{1} << 20;  // 1 MiB: ~16K spans per chunk

constinit SpinLock g_meta_lock{LockRank::kMeta};
constinit char* g_cursor = nullptr;
constinit char* g_limit = nullptr;
constinit std::atomic<size_t> g_meta_bytes{0};

}  // namespace

void* meta_alloc(size_t size) {
  size = (size + 63) & ~size_t{63};
  LockGuard g(g_meta_lock);
  if (g_cursor == nullptr || static_cast<size_t>(g_limit - g_cursor) < size) {
    size_t chunk = size > kChunkSize ? (size + kChunkSize - 1) & ~(kChunkSize - 1) : kChunkSize;
    void* p = os::map_aligned(chunk, 4096);
    // Refused: nothing changes (the current chunk's rest stays usable for
    // smaller requests); the caller fails its request.
    if (p == nullptr) return nullptr;
    g_meta_bytes.fetch_add(chunk, std::memory_order_relaxed);
    g_cursor = static_cast<char*>(p);
    g_limit = g_cursor + chunk;
  }
  void* r = g_cursor;
  g_cursor += size;
  return r;
}

void* meta_alloc_pages(size_t size) {
  size = (size + 4095) & ~size_t{4095};
  void* p = os::map_aligned(size, 4096);
  if (p == nullptr) return nullptr;
  g_meta_bytes.fetch_add(size, std::memory_order_relaxed);
  return p;
}

size_t meta_bytes() { return g_meta_bytes.load(std::memory_order_relaxed); }

void meta_lock_for_fork() { g_meta_lock.lock_unchecked(); }
void meta_unlock_after_fork(bool child) { g_meta_lock.unlock_after_fork(child); }

}  // namespace am

// Memory-limit recovery (see memory_limit.h).
#include "policy/memory_limit.h"

#include <atomic>

#include "base/attributes.h"
#include "core/options.h"
#include "heap/page_heap.h"

namespace am {
namespace {

struct Handler {
  LimitCallback cb;
  void* ctx;
};
// Replaced as a whole (pointer to one of two slots) so a reader never sees a
// callback with another callback's context.
constinit Handler g_slots[2] = {};
constinit std::atomic<int> g_current{-1};
constinit thread_local AM_TLS_IE bool t_in_callback = false;

}  // namespace

void memory_limit_set(size_t bytes, LimitCallback cb, void* ctx) {
  int next = g_current.load(std::memory_order_relaxed) == 0 ? 1 : 0;
  g_slots[next] = {cb, ctx};
  g_current.store(cb ? next : -1, std::memory_order_release);
  option_store(kOptMemoryLimit, static_cast<int64_t>(bytes));
}

void* memory_limit_retry(size_t bytes, LimitAttempt attempt, void* arg) {
  page_heap_release_all();
  HeapStatus status = HeapStatus::kOk;
  void* p = attempt(arg, &status);
  if (p != nullptr || status != HeapStatus::kLimit || t_in_callback) return p;
  int slot = g_current.load(std::memory_order_acquire);
  if (slot < 0) return nullptr;
  Handler h = g_slots[slot];
  t_in_callback = true;
  h.cb(h.ctx, bytes);
  t_in_callback = false;
  // What the callback freed is free but still resident: release it too.
  page_heap_release_all();
  return attempt(arg, &status);
}

}  // namespace am

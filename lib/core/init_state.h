// Where the process is in the one init sequence (front/init.cc runs it).
//
// Owns: g_init_state, the flag every layer reads to know whether the options
// are loaded (kCoreReady: the central tiers work) and whether threads may get
// caches (kReady). Lower layers may start the sequence (ensure_initialized)
// but never name what it does: init_slow is declared here and defined by the
// top of the allocator (front/init.cc), the one place that knows the order.
// Lock: none here; init_slow takes the init lock (LockRank::kInit).
#pragma once

#include <atomic>

#include "base/attributes.h"

namespace am {

enum class InitState : int { kNotStarted = 0, kCoreReady = 1, kReady = 2 };

extern constinit std::atomic<int> g_init_state;

// Runs (or waits out) the init sequence; defined in front/init.cc.
void init_slow();

AM_ALWAYS_INLINE void ensure_initialized() {
  if (AM_UNLIKELY(g_init_state.load(std::memory_order_acquire) < static_cast<int>(InitState::kReady)))
    init_slow();
}
inline bool fully_initialized() {
  return g_init_state.load(std::memory_order_acquire) == static_cast<int>(InitState::kReady);
}

}  // namespace am

// SpinLock slow path and the debug-build lock-order checker.
#include "base/spinlock.h"

#include "base/log.h"
#include "os/os.h"

namespace am {

constinit thread_local uint32_t t_locks_held AM_TLS_IE = 0;

void SpinLock::lock_slow() {
  for (uint32_t spins = 0;; ++spins) {
    if (!word_.load(std::memory_order_relaxed) && !word_.exchange(1, std::memory_order_acquire))
      return;
    if (spins < 64)
      __builtin_ia32_pause();
    else
      os::yield_cpu();
  }
}

namespace lockdebug {

// Bit r set = a lock of rank r is held by this thread. Fork takes every lock
// while checks are suspended (see fork.cc), so bits may repeat only there.
static constinit thread_local AM_TLS_IE uint32_t held_ranks = 0;

void on_acquire(LockRank rank) {
  uint32_t bit = 1u << static_cast<uint32_t>(rank);
  if (held_ranks >= bit) fatal("lock order violation: a lock of equal or higher rank is held");
  held_ranks |= bit;
}

void on_release(LockRank rank) { held_ranks &= ~(1u << static_cast<uint32_t>(rank)); }

bool any_held() { return held_ranks != 0; }

}  // namespace lockdebug
}  // namespace am

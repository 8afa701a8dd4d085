// Stats counters of the C++ allocators (CPUAllocator, AmmallocAllocator).
//
// Owns: for each allocator class, one cache line with allocated bytes and its
// peak (shared by all threads: a relaxed fetch_add per allocation and per free,
// which keeps the peak exact across threads), and the allocation/free counts,
// which live in per-thread shards (counters.cc) so that counting costs a plain
// load+store on a line the thread owns, no lock-prefixed instruction.
// Measured on the 2-core dev box: 4 atomic RMWs per allocate+free pair cost
// ~10 ns single-threaded and ~20 ns per thread with 2 threads; this layout
// ~5 ns and ~11 ns.
//
// Invariants: counts only grow (reset() records a baseline and stats subtract
// it, so no thread ever writes another thread's shard); a shard has at most one
// writer (its owning thread) or is the shared overflow shard, written with RMWs.
// Everything is constant-initialised and trivially destructible: deleters may
// run during static destruction. No locks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ammalloc/allocator.h"
#include "internal.h"

namespace ammalloc::detail {

// Which count of which allocator class.
enum CountId : unsigned { kCpuAllocs, kCpuFrees, kAmAllocs, kAmFrees, kNumCounts };

struct alignas(64) CountShard {
  std::atomic<std::uint64_t> v[kNumCounts];
  std::atomic<bool> owned;  // a live thread writes this shard (plain stores)
};

// This thread's exclusive shard, or null: not claimed yet, or the thread is
// exiting, or no shard was free (then the overflow shard takes RMWs).
// Not initial-exec: libammalloc_cxx.so must load with dlopen (lib/cxx/meson.build).
extern constinit thread_local CountShard* tls_count_shard;

void count_slow(CountId id) noexcept;
// Sum of one count over every shard.
std::uint64_t count_total(CountId id) noexcept;

inline void count(CountId id) noexcept {
  CountShard* s = tls_count_shard;
  if (AM_CXX_LIKELY(s != nullptr)) {
    // Sole writer: load+store, no RMW. Relaxed atomics so that stats() may read
    // it concurrently.
    s->v[id].store(s->v[id].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  count_slow(id);
}

class Counters {
 public:
  constexpr Counters(CountId allocs, CountId frees) noexcept : allocs_id_(allocs), frees_id_(frees) {}

  void on_alloc(std::size_t bytes) noexcept {
    const std::size_t now = allocated_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::size_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    count(allocs_id_);
  }
  void on_free(std::size_t bytes) noexcept {
    allocated_.fetch_sub(bytes, std::memory_order_relaxed);
    count(frees_id_);
  }

  // allocated_bytes, peak and the counts; reserved_bytes is left 0.
  AllocatorStats snapshot() const noexcept {
    AllocatorStats s;
    s.allocated_bytes = allocated_.load(std::memory_order_relaxed);
    s.peak_allocated_bytes = peak_.load(std::memory_order_relaxed);
    s.allocation_count = static_cast<std::size_t>(count_total(allocs_id_) - base_allocs_.load(std::memory_order_relaxed));
    s.free_count = static_cast<std::size_t>(count_total(frees_id_) - base_frees_.load(std::memory_order_relaxed));
    return s;
  }
  void reset_peak() noexcept { peak_.store(allocated_.load(std::memory_order_relaxed), std::memory_order_relaxed); }
  // Zeroes the counts (by moving the baseline) and restarts the peak.
  // allocated_bytes is kept: it describes blocks still alive.
  void reset() noexcept {
    base_allocs_.store(count_total(allocs_id_), std::memory_order_relaxed);
    base_frees_.store(count_total(frees_id_), std::memory_order_relaxed);
    reset_peak();
  }

 private:
  alignas(64) std::atomic<std::size_t> allocated_{0};
  std::atomic<std::size_t> peak_{0};
  // Cold: written by reset() only; kept off the hot line.
  alignas(64) std::atomic<std::uint64_t> base_allocs_{0};
  std::atomic<std::uint64_t> base_frees_{0};
  CountId allocs_id_;
  CountId frees_id_;
};

}  // namespace ammalloc::detail

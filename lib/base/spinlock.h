// SpinLock with a rank, and the one table of lock ranks.
//
// Owns: the lock type every tier uses and the order in which locks may nest.
// A thread holding a lock of rank r may only take locks of a higher rank; fork
// (lib/front/fork.cc) takes every lock in this order, so the order is also what makes
// fork() deadlock-free. Debug builds (AM_DEBUG) check the order on every
// acquisition and abort on an allocation made while any allocator lock is held.
//
// Why a spinlock and not a pthread mutex: critical sections are short (tens of
// instructions to move a batch), pthread_mutex_lock may not be used before libc
// is fully initialised, and a spinlock is trivially constant-initialised. After
// 64 failed spins the waiter yields the CPU so an oversubscribed machine (the
// target runs dozens of threads on few cores) makes progress. While the
// process has one thread (glibc's __libc_single_threaded) the lock is taken
// without an atomic exchange (SpinLock::take says why that is safe).
#pragma once

#include <atomic>
#include <cstdint>
#include <sys/single_threaded.h>

#include "base/attributes.h"

namespace am {

// Lowest rank is taken first.
enum class LockRank : uint8_t {
  // profiler.cc: one heap-profile dump at a time (its snapshot buffer and
  // file chunk), held across the dump's file I/O. Taken with no other
  // allocator lock held; inside it kProfile, for the snapshot only.
  kProfileDump = 0,
  // profiler.cc: stack table, buckets, counters. Taken with no other
  // allocator lock held but kProfileDump (from the slow paths' entry,
  // free_slow before the page heap, a dump's snapshot); only meta_alloc
  // (kMeta) inside. The fork module (front/fork.cc) takes the two profiler
  // locks and the heap checker's stripes first, after glibc's stdio list
  // lock: these three lowest ranks.
  kProfile,
  // heap_checker.cc: one stripe of the live-block table. Taken with no other
  // allocator lock held (stacks are captured and interned before), nothing
  // inside; a check takes every stripe (unchecked, like fork) to snapshot.
  kHeapCheck,
  kInit,           // init.cc: the one-time initialisation
  // thread_cache_registry.cc: one walk that visits the caches one at a time
  // (the GC). Held for the whole walk, around the registry lock and each
  // cache's gc_lock; it guards no data, so fork does not take it (a forced
  // walk may wait on a stopped thread for ever) and the child resets it.
  kRegistryWalk,
  kRegistry,       // thread_cache_registry: the list of live thread caches
  kThreadCache,    // thread_cache: one per cache, between its owner's slow path and the GC
  kCentral,        // central_cache: one per size class (never two at once)
  kPageHeap,       // page_heap + pagemap writes + system_alloc
  kMeta,           // meta_arena: bookkeeping memory
  kCount
};

// Allocator locks the calling thread holds now (every lock/unlock, the
// fork-time *_unchecked ones too). A signal handler that finds it non-zero
// interrupted a critical section and must not take allocator locks
// (stats_signal.cc). Costs one TLS add per acquisition, never on the fast path.
extern constinit thread_local uint32_t t_locks_held AM_TLS_IE;

namespace lockdebug {
void on_acquire(LockRank rank);
void on_release(LockRank rank);
bool any_held();
}  // namespace lockdebug

class SpinLock {
 public:
  constexpr explicit SpinLock(LockRank rank) : rank_(rank) {}
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() {
#ifdef AM_DEBUG
    lockdebug::on_acquire(rank_);
#endif
    ++t_locks_held;
    AM_COMPILER_BARRIER();  // counted before the critical section starts
    if (AM_LIKELY(take())) return;
    lock_slow();
  }
  bool try_lock() {
    ++t_locks_held;
    AM_COMPILER_BARRIER();
    if (word_.load(std::memory_order_relaxed) || word_.exchange(1, std::memory_order_acquire)) {
      --t_locks_held;
      return false;
    }
#ifdef AM_DEBUG
    lockdebug::on_acquire(rank_);
#endif
    return true;
  }
  void unlock() {
    word_.store(0, std::memory_order_release);
#ifdef AM_DEBUG
    lockdebug::on_release(rank_);
#endif
    AM_COMPILER_BARRIER();
    --t_locks_held;
  }
  // fork() takes every lock, several of one rank; it bypasses the order check.
  void lock_unchecked() {
    ++t_locks_held;
    AM_COMPILER_BARRIER();
    if (word_.exchange(1, std::memory_order_acquire)) lock_slow();
  }
  void unlock_unchecked() {
    word_.store(0, std::memory_order_release);
    AM_COMPILER_BARRIER();
    --t_locks_held;
  }
  // fork() child: the forking thread held this lock; no other thread exists
  // (and, once every lock is reset, the thread holds none).
  void reset_in_child() {
    word_.store(0, std::memory_order_relaxed);
    t_locks_held = 0;
  }
  // fork module: after fork(), the parent releases what prepare took; the
  // child resets it.
  void unlock_after_fork(bool child) {
    if (child)
      reset_in_child();
    else
      unlock_unchecked();
  }
  LockRank rank() const { return rank_; }

 private:
  // The acquiring step. While glibc says the process has one thread
  // (__libc_single_threaded: cleared by pthread_create before the new thread
  // runs, so no other thread can be inside a lock when it reads true) a
  // plain load and store: the `xchg` is a full barrier, about 20 cycles, and
  // a large malloc+free takes two locks; single-threaded programs (sqlite3,
  // python, compilers) take one per refill and flush too. glibc's own malloc
  // skips its atomics the same way (SINGLE_THREAD_P). Threads made with a
  // raw clone(2) are not counted by glibc: such a program is as unsafe with
  // glibc's malloc. ThreadSanitizer builds always exchange.
  bool take() {
#ifndef AM_TSAN
    if (__libc_single_threaded) {
      if (word_.load(std::memory_order_relaxed)) return false;
      word_.store(1, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_acquire);
      return true;
    }
#endif
    return !word_.exchange(1, std::memory_order_acquire);
  }
  AM_NOINLINE void lock_slow();
  std::atomic<uint32_t> word_{0};
  LockRank rank_;
};

class LockGuard {
 public:
  explicit LockGuard(SpinLock& l) : l_(l) { l_.lock(); }
  ~LockGuard() { l_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace am

// MemoryMonitor: the process-wide face of ammalloc's own accounting, for an
// inference engine's memory layer (lib/include/ammalloc/engine.h).
//
// Figures come from the am_* heap itself, so they include every byte that heap
// holds (tensors, KV-cache slabs, the engine's own std containers when ammalloc
// is the process malloc), not only what the engine chose to report:
//   used()      resident heap bytes now (am_memory_usage: mapped, not released)
//   peak()      the highest used() since start or reset_peak()
//   allocated() bytes in live objects (generic.current_allocated_bytes)
//   limit()     am_set_memory_limit's bound, 0 = none
//
// Limit subscribers. set_limit() installs ONE C callback in the core
// (am_set_memory_limit) and fans it out: when an allocation would take used()
// past the limit, the core first releases free pages, then calls the monitor,
// which calls the subscribers in the order they subscribed, each with a fresh
// MemoryLimitEvent, and stops as soon as used() + requested fits under the
// limit (free pages are returned to the OS after each subscriber, so what a
// subscriber freed shows in used() at once). The core then retries the
// allocation once and fails it cleanly (NULL + ENOMEM, std::bad_alloc) if it
// still does not fit.
//
// What a subscriber may do: free memory (the point); take its own locks (no
// allocator lock and no monitor lock is held while it runs); allocate (this
// layer may), but its allocations happen while the heap is at its limit and
// do not call the subscribers again (the core's per-thread guard): they may
// fail, and an exception escaping a subscriber is caught, counted in
// stats().subscriber_exceptions and the next subscriber runs (the core is C
// and must never be unwound through). Subscribers run on the allocating
// thread, possibly on several threads at once.
//
// Locks: one mutex guards the subscriber list and the limit setter; it is
// never held while a subscriber runs, nor while anything is allocated (the
// list is copy-on-write: built outside the lock, swapped in under it), so a
// subscriber may subscribe or unsubscribe, and an allocation made while the
// list is being changed may hit the limit without deadlocking.
//
// Whoever calls am_set_memory_limit directly replaces the monitor's callback;
// use MemoryMonitor::set_limit instead.
#ifndef AMMALLOC_MEMORY_MONITOR_H
#define AMMALLOC_MEMORY_MONITOR_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "ammalloc/allocator.h"

namespace ammalloc {

// What a subscriber is told. needed() is how much must be freed for the
// allocation to fit: used + requested - limit.
struct MemoryLimitEvent {
  std::size_t requested = 0;  // bytes the failing allocation asked the page heap for
  std::size_t used = 0;       // MemoryMonitor::used() when this subscriber is called
  std::size_t limit = 0;
  std::size_t needed() const noexcept { return used + requested > limit ? used + requested - limit : 0; }
};

struct MemoryMonitorStats {
  std::uint64_t limit_events = 0;           // times the core called the monitor
  std::uint64_t subscriber_calls = 0;       // subscriber invocations
  std::uint64_t satisfied = 0;              // events after which the request fitted
  std::uint64_t unsatisfied = 0;            // events where every subscriber ran and it still did not fit
  std::uint64_t subscriber_exceptions = 0;  // exceptions caught from subscribers
};

class AM_CXX_API MemoryMonitor {
 public:
  using Callback = std::function<void(const MemoryLimitEvent&)>;

 private:
  struct Entry;

 public:
  // Move-only token of one subscription; destroying it (or reset()) unsubscribes.
  // When reset() returns, no thread is inside that subscriber any more, unless
  // reset() is called from inside that very subscriber (then it does not wait).
  class AM_CXX_API Subscription {
   public:
    Subscription() noexcept = default;
    Subscription(Subscription&& o) noexcept;
    Subscription& operator=(Subscription&& o) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();
    void reset() noexcept;
    explicit operator bool() const noexcept { return entry_ != nullptr; }

   private:
    friend class MemoryMonitor;
    explicit Subscription(std::shared_ptr<Entry> e) noexcept : entry_(std::move(e)) {}
    std::shared_ptr<Entry> entry_;
  };

  // The one instance (never destroyed: the core may call it during exit).
  static MemoryMonitor& instance() noexcept;

  // Sets the heap's limit on resident bytes (0 = none) and installs the
  // monitor's callback in the core.
  void set_limit(std::size_t bytes);
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  std::size_t used() const noexcept;
  std::size_t peak() const noexcept;
  void reset_peak() noexcept;
  std::size_t allocated() const noexcept;
  // The process's resident set (VmRSS from /proc/self/statm), all heaps and
  // code included; 0 if /proc is unreadable.
  static std::size_t process_rss() noexcept;

  // Adds a subscriber at the end of the call order.
  [[nodiscard]] Subscription subscribe(Callback cb);
  std::size_t subscriber_count() const;

  MemoryMonitorStats stats() const noexcept;

  MemoryMonitor(const MemoryMonitor&) = delete;
  MemoryMonitor& operator=(const MemoryMonitor&) = delete;

 private:
  using List = std::vector<std::shared_ptr<Entry>>;

  MemoryMonitor() = default;
  ~MemoryMonitor() = default;
  static void on_limit(void* ctx, std::size_t requested) noexcept;
  void fan_out(std::size_t requested) noexcept;
  void unsubscribe(const std::shared_ptr<Entry>& e) noexcept;
  std::shared_ptr<const List> snapshot() const;

  mutable std::mutex mu_;
  std::shared_ptr<const List> list_;  // copy-on-write; null = empty
  std::atomic<std::size_t> limit_{0};
  std::atomic<std::uint64_t> limit_events_{0}, subscriber_calls_{0}, satisfied_{0}, unsatisfied_{0},
      subscriber_exceptions_{0};
};

inline MemoryMonitor& memory_monitor() noexcept { return MemoryMonitor::instance(); }

}  // namespace ammalloc

#endif  // AMMALLOC_MEMORY_MONITOR_H

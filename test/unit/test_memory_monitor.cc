// Tests of MemoryMonitor (lib/include/ammalloc/memory_monitor.h): the heap's
// figures, and the fan-out of the core's memory-limit callback to several
// subscribers (in order, until the failing allocation fits), with subscribers
// that allocate, throw, unsubscribe themselves, or free nothing.
//
// The am_* heap of this test program holds only what the cases allocate with
// am_* (Catch2 and the std containers use the system malloc), so figures are
// exact to the page. Every case starts from am_reset() and a guard sets the
// limit back to none.
#include <errno.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "ammalloc/memory_monitor.h"

using namespace ammalloc;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct Clean {
  Clean() { am_reset(); }
  ~Clean() { memory_monitor().set_limit(0); }
};

// A large block (page heap) that a subscriber can give back.
struct Owned {
  void* p = nullptr;
  std::size_t n = 0;
  explicit Owned(std::size_t bytes) : p(am_malloc(bytes)), n(bytes) {
    REQUIRE(p != nullptr);
    std::memset(p, 1, n);
  }
  void drop() {
    am_free(p);
    p = nullptr;
  }
  ~Owned() { am_free(p); }
};

}  // namespace

TEST_CASE("monitor figures are the heap's own", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  const std::size_t used0 = m.used();
  std::size_t cur = 0, pk = 0;
  am_memory_usage(&cur, &pk);
  CHECK(used0 == cur);
  CHECK(m.peak() == pk);
  {
    Owned a(16 * kMiB);
    CHECK(m.used() >= used0 + 16 * kMiB);
    CHECK(m.allocated() >= 16 * kMiB);
    CHECK(m.peak() >= m.used());
  }
  am_release_free_memory();
  CHECK(m.used() < used0 + 16 * kMiB);
  CHECK(m.peak() >= used0 + 16 * kMiB);
  m.reset_peak();
  CHECK(m.peak() == m.used());
  CHECK(MemoryMonitor::process_rss() > 0);
}

TEST_CASE("set_limit maps to the allocator's limit", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  m.set_limit(m.used() + 4 * kMiB);
  CHECK(m.limit() == m.used() + 4 * kMiB);
  errno = 0;
  void* p = am_malloc(8 * kMiB);  // no subscriber: fails cleanly
  CHECK(p == nullptr);
  CHECK(errno == ENOMEM);
  void* q = am_malloc(2 * kMiB);
  CHECK(q != nullptr);
  am_free(q);
  m.set_limit(0);
  CHECK(m.limit() == 0);
  p = am_malloc(8 * kMiB);
  CHECK(p != nullptr);
  am_free(p);
}

TEST_CASE("subscribers run in order until the request fits", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  Owned a(8 * kMiB), b(8 * kMiB), d(8 * kMiB);
  std::vector<int> order;
  std::vector<MemoryLimitEvent> events;
  auto s1 = m.subscribe([&](const MemoryLimitEvent& ev) { order.push_back(1); events.push_back(ev); a.drop(); });
  auto s2 = m.subscribe([&](const MemoryLimitEvent& ev) { order.push_back(2); events.push_back(ev); b.drop(); });
  auto s3 = m.subscribe([&](const MemoryLimitEvent& ev) { order.push_back(3); events.push_back(ev); d.drop(); });
  CHECK(m.subscriber_count() == 3);
  const MemoryMonitorStats st0 = m.stats();
  const std::size_t used0 = m.used();
  m.set_limit(used0 + 2 * kMiB);

  // Needs 6 MiB - 2 MiB = 4 MiB: the first subscriber's 8 MiB is enough.
  void* p = am_malloc(6 * kMiB);
  REQUIRE(p != nullptr);
  REQUIRE(order == std::vector<int>{1});
  CHECK(events[0].limit == used0 + 2 * kMiB);
  CHECK(events[0].requested >= 6 * kMiB);
  CHECK(events[0].used == used0);
  CHECK(events[0].needed() >= 4 * kMiB);
  CHECK(b.p != nullptr);
  CHECK(d.p != nullptr);

  // Now 14 MiB more: the first subscriber has nothing left, so 2 and 3 run.
  order.clear();
  void* q = am_malloc(14 * kMiB);
  REQUIRE(q != nullptr);
  CHECK(order == std::vector<int>{1, 2, 3});
  const MemoryMonitorStats st = m.stats();
  CHECK(st.limit_events == st0.limit_events + 2);
  CHECK(st.subscriber_calls == st0.subscriber_calls + 4);
  CHECK(st.satisfied == st0.satisfied + 2);
  am_free(p);
  am_free(q);
}

TEST_CASE("a request that nothing can make fit fails cleanly after every subscriber", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  Owned a(4 * kMiB);
  int calls = 0;
  auto s = m.subscribe([&](const MemoryLimitEvent&) {
    ++calls;
    a.drop();
  });
  const MemoryMonitorStats st0 = m.stats();
  m.set_limit(m.used() + kMiB);
  errno = 0;
  void* p = am_malloc(32 * kMiB);
  CHECK(p == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(calls == 1);
  CHECK(a.p == nullptr);  // it did free what it had
  CHECK(m.stats().unsatisfied == st0.unsatisfied + 1);
}

TEST_CASE("subscribers that allocate, throw or unsubscribe themselves", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  Owned a(8 * kMiB);
  void* inner_large = reinterpret_cast<void*>(1);
  void* inner_small = nullptr;
  int thrower_calls = 0, self_calls = 0;
  MemoryMonitor::Subscription self;
  // 1: allocates. Its large allocation is past the limit and does not call
  // the subscribers again (the core's guard): it just fails. A small one
  // comes from free space and succeeds.
  auto s1 = m.subscribe([&](const MemoryLimitEvent&) {
    inner_large = am_malloc(64 * kMiB);
    inner_small = am_malloc(64);
  });
  // 2: throws; the monitor counts it and goes on.
  auto s2 = m.subscribe([&](const MemoryLimitEvent&) {
    ++thrower_calls;
    throw std::runtime_error("subscriber failure");
  });
  // 3: unsubscribes itself (must not wait for itself), then frees.
  self = m.subscribe([&](const MemoryLimitEvent&) {
    ++self_calls;
    self.reset();
    a.drop();
  });
  const MemoryMonitorStats st0 = m.stats();
  m.set_limit(m.used() + 2 * kMiB);
  void* p = am_malloc(6 * kMiB);
  CHECK(p != nullptr);
  CHECK(inner_large == nullptr);
  CHECK(inner_small != nullptr);
  CHECK(thrower_calls == 1);
  CHECK(self_calls == 1);
  CHECK_FALSE(self);
  CHECK(m.subscriber_count() == 2);
  CHECK(m.stats().subscriber_exceptions == st0.subscriber_exceptions + 1);
  am_free(p);
  am_free(inner_small);
}

TEST_CASE("unsubscribed subscribers are not called", "[monitor]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  int calls = 0;
  {
    auto s = m.subscribe([&](const MemoryLimitEvent&) { ++calls; });
    auto moved = std::move(s);
    CHECK_FALSE(s);
    CHECK(moved);
  }
  CHECK(m.subscriber_count() == 0);
  m.set_limit(m.used() + kMiB);
  CHECK(am_malloc(8 * kMiB) == nullptr);
  CHECK(calls == 0);
}

TEST_CASE("subscribing and unsubscribing while other threads hit the limit", "[monitor][threaded]") {
  Clean c;
  MemoryMonitor& m = memory_monitor();
  m.set_limit(m.used() + 8 * kMiB);
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, bad{0};  // counted: Catch2 v2 assertions are not thread-safe
  std::vector<std::thread> hitters;
  for (int t = 0; t < 2; ++t)
    hitters.emplace_back([&] {
      while (!stop.load()) {
        void* p = am_malloc(16 * kMiB);  // always past the limit
        if (p != nullptr) {
          bad.fetch_add(1);
          am_free(p);
        }
      }
    });
  for (int i = 0; i < 300; ++i) {
    auto s = m.subscribe([&](const MemoryLimitEvent& ev) {
      calls.fetch_add(1);
      if (ev.limit == 0) bad.fetch_add(1);
    });
    std::this_thread::yield();
  }  // each reset() returns only when no thread is inside that subscriber
  stop = true;
  for (auto& t : hitters) t.join();
  CHECK(bad.load() == 0);
  CHECK(m.subscriber_count() == 0);
  const long after = calls.load();
  CHECK(am_malloc(16 * kMiB) == nullptr);
  CHECK(calls.load() == after);
}

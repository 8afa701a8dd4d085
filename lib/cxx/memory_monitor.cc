// MemoryMonitor (lib/include/ammalloc/memory_monitor.h): the heap's figures and
// the fan-out of the core's one memory-limit callback to many subscribers.
//
// Owns: the subscriber list (copy-on-write vector of shared Entry records) and
// the limit as last set. Invariants: an Entry is called only while its
// `active` count is raised and `removed` is false, so unsubscribe (removed =
// true, then wait for active == 0; both seq_cst, a Dekker pair) returns only
// when no thread is inside it. The fan-out allocates nothing: it copies one
// shared_ptr to the list (a reference count) and calls through it.
// Locks: mu_ guards list_ and serialises set_limit; it is taken only for
// pointer swaps and copies, never around an allocation or a subscriber call.
#include "ammalloc/memory_monitor.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

#include "ammalloc/ammalloc.h"

namespace ammalloc {

struct MemoryMonitor::Entry {
  Callback fn;
  std::atomic<int> active{0};
  std::atomic<bool> removed{false};
};

namespace {
// The entry whose subscriber this thread is running, so that a subscriber
// unsubscribing itself does not wait for itself.
thread_local const void* t_running_entry = nullptr;
}  // namespace

MemoryMonitor& MemoryMonitor::instance() noexcept {
  // Never destroyed: an allocation during exit may still hit the limit and
  // call on_limit after static destructors have run.
  alignas(MemoryMonitor) static unsigned char storage[sizeof(MemoryMonitor)];
  static MemoryMonitor* const m = new (storage) MemoryMonitor();
  return *m;
}

void MemoryMonitor::set_limit(std::size_t bytes) {
  std::lock_guard<std::mutex> g(mu_);
  limit_.store(bytes, std::memory_order_relaxed);
  ::am_set_memory_limit(bytes, bytes != 0 ? &MemoryMonitor::on_limit : nullptr, this);
}

std::size_t MemoryMonitor::used() const noexcept {
  std::size_t current = 0;
  ::am_memory_usage(&current, nullptr);
  return current;
}

std::size_t MemoryMonitor::peak() const noexcept {
  std::size_t p = 0;
  ::am_memory_usage(nullptr, &p);
  return p;
}

void MemoryMonitor::reset_peak() noexcept { ::am_reset_peak_memory(); }

std::size_t MemoryMonitor::allocated() const noexcept {
  std::size_t v = 0;
  ::am_get_numeric_property("generic.current_allocated_bytes", &v);
  return v;
}

std::size_t MemoryMonitor::process_rss() noexcept {
  // statm: "size resident shared ..." in pages; 64 bytes hold the first two
  // fields of any realistic process (two numbers of at most 16 digits).
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char* end = nullptr;
  std::strtoull(buf, &end, 10);
  unsigned long long pages = std::strtoull(end, nullptr, 10);
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::shared_ptr<const MemoryMonitor::List> MemoryMonitor::snapshot() const {
  std::lock_guard<std::mutex> g(mu_);
  return list_;
}

MemoryMonitor::Subscription MemoryMonitor::subscribe(Callback cb) {
  auto e = std::make_shared<Entry>();
  e->fn = std::move(cb);
  for (;;) {
    std::shared_ptr<const List> cur = snapshot();
    auto next = std::make_shared<List>(cur ? *cur : List{});
    next->push_back(e);
    std::lock_guard<std::mutex> g(mu_);
    if (list_ == cur) {
      list_ = std::move(next);
      return Subscription(std::move(e));
    }
  }  // another thread changed the list meanwhile: rebuild from the new one
}

void MemoryMonitor::unsubscribe(const std::shared_ptr<Entry>& e) noexcept {
  e->removed.store(true, std::memory_order_seq_cst);
  for (;;) {
    std::shared_ptr<const List> cur = snapshot();
    if (!cur) break;
    std::shared_ptr<List> next;
    try {
      next = std::make_shared<List>();
      next->reserve(cur->size());
    } catch (...) {
      // Out of memory: the entry stays in the list, but `removed` already
      // keeps every later fan-out from calling it.
      break;
    }
    for (const auto& x : *cur)
      if (x != e) next->push_back(x);
    std::lock_guard<std::mutex> g(mu_);
    if (list_ == cur) {
      list_ = next->empty() ? nullptr : std::shared_ptr<const List>(std::move(next));
      break;
    }
  }
  if (t_running_entry == e.get()) return;
  while (e->active.load(std::memory_order_seq_cst) != 0) ::sched_yield();
}

std::size_t MemoryMonitor::subscriber_count() const {
  auto cur = snapshot();
  return cur ? cur->size() : 0;
}

void MemoryMonitor::on_limit(void* ctx, std::size_t requested) noexcept {
  static_cast<MemoryMonitor*>(ctx)->fan_out(requested);
}

void MemoryMonitor::fan_out(std::size_t requested) noexcept {
  limit_events_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<const List> list;
  {
    std::lock_guard<std::mutex> g(mu_);
    list = list_;
  }
  const std::size_t limit = limit_.load(std::memory_order_relaxed);
  auto fits = [&] { return limit == 0 || used() + requested <= limit; };
  if (list) {
    for (const auto& e : *list) {
      if (fits()) break;
      e->active.fetch_add(1, std::memory_order_seq_cst);
      if (!e->removed.load(std::memory_order_seq_cst)) {
        MemoryLimitEvent ev{requested, used(), limit};
        const void* outer = t_running_entry;
        t_running_entry = e.get();
        subscriber_calls_.fetch_add(1, std::memory_order_relaxed);
        try {
          e->fn(ev);
        } catch (...) {
          subscriber_exceptions_.fetch_add(1, std::memory_order_relaxed);
        }
        t_running_entry = outer;
        // What the subscriber freed is free but resident; used() counts it
        // until it is returned to the OS.
        ::am_release_free_memory();
      }
      e->active.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  (fits() ? satisfied_ : unsatisfied_).fetch_add(1, std::memory_order_relaxed);
}

MemoryMonitorStats MemoryMonitor::stats() const noexcept {
  MemoryMonitorStats s;
  s.limit_events = limit_events_.load(std::memory_order_relaxed);
  s.subscriber_calls = subscriber_calls_.load(std::memory_order_relaxed);
  s.satisfied = satisfied_.load(std::memory_order_relaxed);
  s.unsatisfied = unsatisfied_.load(std::memory_order_relaxed);
  s.subscriber_exceptions = subscriber_exceptions_.load(std::memory_order_relaxed);
  return s;
}

// ---- Subscription ------------------------------------------------------------------
MemoryMonitor::Subscription::Subscription(Subscription&& o) noexcept : entry_(std::move(o.entry_)) {}

MemoryMonitor::Subscription& MemoryMonitor::Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    reset();
    entry_ = std::move(o.entry_);
  }
  return *this;
}

MemoryMonitor::Subscription::~Subscription() { reset(); }

void MemoryMonitor::Subscription::reset() noexcept {
  if (!entry_) return;
  MemoryMonitor::instance().unsubscribe(entry_);
  entry_.reset();
}

}  // namespace ammalloc

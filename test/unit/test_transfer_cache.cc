// TransferCache (lib/heap/transfer_cache.h): whole batches in and out without the
// central lock, the per-class bound, partial batches going straight to the
// central cache, the counters and the byte figure, draining, many threads at
// once with ownership checks, fork() while other threads use it, and
// AMMALLOC_TRANSFER_CACHE=0.
//
// Calls transfer_* and central_* directly (no thread cache involved); each test
// uses its own size classes, which nothing else in this program allocates.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "heap/central_cache.h"
#include "core/options.h"
#include "os/os.h"
#include "core/size_class.h"
#include "heap/transfer_cache.h"

using namespace am;

namespace {

// No background GC or scavenger: the counters and figures compared here must
// move only by this program's own calls.
const int g_quiet_background = [] {
  setenv("AMMALLOC_GC_INTERVAL_MS", "0", 0);
  setenv("AMMALLOC_SCAVENGER", "0", 0);
  return 0;
}();

uint32_t batch_of(uint32_t cl) { return class_info(cl).batch; }

std::vector<void*> chain_to_vector(void* head, uint32_t n) {
  std::vector<void*> v;
  void* p = head;
  for (uint32_t i = 0; i < n; ++i) {
    REQUIRE(p != nullptr);
    v.push_back(p);
    p = *static_cast<void**>(p);
  }
  CHECK(p == nullptr);  // exactly n objects
  return v;
}

void* to_chain(const std::vector<void*>& v) {
  for (size_t i = 0; i < v.size(); ++i) *static_cast<void**>(v[i]) = i + 1 < v.size() ? v[i + 1] : nullptr;
  return v.empty() ? nullptr : v[0];
}

// One full batch from the central cache.
std::vector<void*> central_batch(uint32_t cl) {
  void* head = nullptr;
  REQUIRE(central_remove_range(cl, &head, static_cast<int>(batch_of(cl))) == static_cast<int>(batch_of(cl)));
  return chain_to_vector(head, batch_of(cl));
}

// Objects of class cl handed out by the central cache (to anyone: the
// transfer cache's objects count as handed out).
long long central_outstanding(uint32_t cl) {
  CentralClassStats st = central_class_stats(cl);
  return static_cast<long long>(st.spans * class_info(cl).objects) - static_cast<long long>(st.free_objects);
}

TransferCounters counters() { return transfer_cache_counters(); }

template <typename F>
int run_in_child(F f) {
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGABRT, SIG_DFL);
    _exit(f());
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

TEST_CASE("transfer cache: slot counts follow the byte bound", "[transfer_cache]") {
  REQUIRE(transfer_cache_enabled());
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    INFO("class " << cl << " size " << class_size(cl));
    const uint32_t slots = transfer_class_slots(cl);
    CHECK(slots >= 2);
    CHECK(slots <= 64);
    CHECK((slots & (slots - 1)) == 0);
    const size_t bytes = static_cast<size_t>(slots) * batch_of(cl) * class_size(cl);
    if (slots > 2) CHECK(bytes <= 64 * 1024);
    if (slots < 64) CHECK(2 * bytes > 64 * 1024);  // as many as fit
  }
  CHECK(transfer_class_slots(size_to_class(16)) == 64);
  CHECK(transfer_class_slots(size_to_class(64)) == 16);
  CHECK(transfer_class_slots(size_to_class(4096)) == 2);
}

TEST_CASE("transfer cache: batches go in up to the bound and come out whole", "[transfer_cache]") {
  const uint32_t cl = size_to_class(96);
  const uint32_t slots = transfer_class_slots(cl), batch = batch_of(cl);
  transfer_cache_drain_all();
  REQUIRE(transfer_class_objects(cl) == 0);
  const long long out0 = central_outstanding(cl);
  const TransferCounters c0 = counters();
  const size_t bytes0 = transfer_cache_free_bytes();

  std::vector<std::vector<void*>> batches;
  for (uint32_t i = 0; i < slots + 1; ++i) batches.push_back(central_batch(cl));
  const long long acq0 = static_cast<long long>(central_lock_acquisitions());
  for (uint32_t i = 0; i < slots; ++i) {
    transfer_insert_range(cl, to_chain(batches[i]), static_cast<int>(batch));
    CHECK(transfer_class_objects(cl) == static_cast<size_t>(i + 1) * batch);
  }
  // No central lock for any of those.
  CHECK(static_cast<long long>(central_lock_acquisitions()) == acq0);
  CHECK(counters().hits == c0.hits + slots);
  CHECK(counters().misses == c0.misses);
  CHECK(transfer_cache_free_bytes() == bytes0 + static_cast<size_t>(slots) * batch * class_size(cl));

  // Full: the next batch goes to the central cache (a miss).
  transfer_insert_range(cl, to_chain(batches[slots]), static_cast<int>(batch));
  CHECK(counters().misses == c0.misses + 1);
  CHECK(transfer_class_objects(cl) == static_cast<size_t>(slots) * batch);
  CHECK(central_outstanding(cl) == out0 + static_cast<long long>(slots) * batch);

  // Out again, oldest first, each batch exactly as it went in.
  for (uint32_t i = 0; i < slots; ++i) {
    void* head = nullptr;
    REQUIRE(transfer_remove_range(cl, &head, static_cast<int>(batch)) == static_cast<int>(batch));
    CHECK(chain_to_vector(head, batch) == batches[i]);
  }
  CHECK(transfer_class_objects(cl) == 0);
  CHECK(counters().hits == c0.hits + 2 * slots);
  CHECK(static_cast<long long>(central_lock_acquisitions()) == acq0 + 1);  // the one miss

  // Empty: a removal is served by the central cache (a miss).
  void* head = nullptr;
  REQUIRE(transfer_remove_range(cl, &head, static_cast<int>(batch)) == static_cast<int>(batch));
  CHECK(counters().misses == c0.misses + 2);
  std::vector<void*> extra = chain_to_vector(head, batch);
  central_insert_range(cl, to_chain(extra), static_cast<int>(batch));
  for (uint32_t i = 0; i < slots; ++i) central_insert_range(cl, to_chain(batches[i]), static_cast<int>(batch));
  CHECK(central_outstanding(cl) == out0);
}

TEST_CASE("transfer cache: partial batches bypass it", "[transfer_cache]") {
  const uint32_t cl = size_to_class(160);
  const uint32_t batch = batch_of(cl);
  transfer_cache_drain_all();
  const TransferCounters c0 = counters();
  std::vector<void*> objs = central_batch(cl);
  std::vector<void*> part(objs.begin(), objs.begin() + batch / 2);
  std::vector<void*> rest(objs.begin() + batch / 2, objs.end());
  transfer_insert_range(cl, to_chain(part), static_cast<int>(part.size()));
  CHECK(transfer_class_objects(cl) == 0);
  void* head = nullptr;
  REQUIRE(transfer_remove_range(cl, &head, 3) == 3);
  std::vector<void*> three = chain_to_vector(head, 3);
  CHECK(counters().hits == c0.hits);
  CHECK(counters().misses == c0.misses);
  central_insert_range(cl, to_chain(three), 3);
  central_insert_range(cl, to_chain(rest), static_cast<int>(rest.size()));
}

TEST_CASE("transfer cache: drain gives every batch to the central cache", "[transfer_cache]") {
  const uint32_t cl = size_to_class(224);
  const uint32_t batch = batch_of(cl);
  transfer_cache_drain_all();
  const long long out0 = central_outstanding(cl);
  const size_t spans0 = central_class_stats(cl).spans;
  for (int i = 0; i < 2; ++i) {
    std::vector<void*> b = central_batch(cl);
    transfer_insert_range(cl, to_chain(b), static_cast<int>(batch));
  }
  CHECK(transfer_class_objects(cl) == 2 * batch);
  CHECK(central_outstanding(cl) == out0 + 2 * batch);
  transfer_cache_drain_all();
  CHECK(transfer_class_objects(cl) == 0);
  CHECK(central_outstanding(cl) == out0);
  CHECK(central_class_stats(cl).spans == spans0);  // emptied spans went back to the page heap
}

TEST_CASE("transfer cache: batches nobody takes go back to the central cache", "[transfer_cache]") {
  const uint32_t idle = size_to_class(352), busy = size_to_class(416);
  transfer_cache_drain_all();
  const long long idle_out0 = central_outstanding(idle), busy_out0 = central_outstanding(busy);
  for (uint32_t cl : {idle, busy})
    for (int i = 0; i < 2; ++i) {
      std::vector<void*> b = central_batch(cl);
      transfer_insert_range(cl, to_chain(b), static_cast<int>(batch_of(cl)));
    }
  const uint64_t sec = 1'000'000'000;
  const uint64_t t = os::now_ns() + 100 * sec;  // ahead of any pass made with the real clock
  transfer_cache_decay(t);  // notes where each ring stands
  // `busy` is drawn from (and refilled) between two passes; `idle` is not.
  void* head = nullptr;
  REQUIRE(transfer_remove_range(busy, &head, static_cast<int>(batch_of(busy))) == static_cast<int>(batch_of(busy)));
  transfer_insert_range(busy, head, static_cast<int>(batch_of(busy)));
  CHECK(transfer_cache_decay(t + sec / 2) == 0);  // at most one pass a second
  CHECK(transfer_class_objects(idle) == 2 * batch_of(idle));
  CHECK(transfer_cache_decay(t + 2 * sec) == 2);
  CHECK(transfer_class_objects(idle) == 0);
  CHECK(central_outstanding(idle) == idle_out0);
  CHECK(transfer_class_objects(busy) == 2 * batch_of(busy));
  // Not drawn from since: now it goes too.
  CHECK(transfer_cache_decay(t + 4 * sec) == 2);
  CHECK(transfer_class_objects(busy) == 0);
  CHECK(central_outstanding(busy) == busy_out0);
}

TEST_CASE("transfer cache: many threads exchange batches, no object has two owners", "[transfer_cache]") {
  // Every object carries an owner word (its second word): a thread that takes
  // a batch claims each object with an exchange and must find it free; it
  // gives it up before passing the batch on. Two owners at once, a lost or a
  // duplicated object, or a chain of the wrong length fails the test.
  const uint32_t cl = size_to_class(64);
  const uint32_t batch = batch_of(cl);
  constexpr uint64_t kFree = 0x7a11'f4ee'0000'0000ULL, kOwned = 0x0bed'0000'0000'0000ULL;
  constexpr uint64_t kTagMask = 0xffff'0000'0000'0000ULL;
  transfer_cache_drain_all();
  const long long out0 = central_outstanding(cl);
  const TransferCounters c0 = counters();

  constexpr int kThreads = 6, kRounds = 3000;
  std::atomic<int> bad_owner{0}, bad_length{0};
  std::atomic<size_t> ops{0};
  auto owner = [](void* p) { return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<void**>(p) + 1); };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::vector<void*>> held;  // up to 4 batches, so threads drift apart
      for (int r = 0; r < kRounds; ++r) {
        const bool take = held.empty() || (held.size() < 4 && ((r * 7 + t) % 3 != 0));
        if (take) {
          void* head = nullptr;
          int got = transfer_remove_range(cl, &head, static_cast<int>(batch));
          ops.fetch_add(1, std::memory_order_relaxed);
          std::vector<void*> v;
          for (void* p = head; p != nullptr && v.size() <= batch; p = *static_cast<void**>(p)) v.push_back(p);
          if (got != static_cast<int>(batch) || v.size() != batch) bad_length.fetch_add(1);
          for (void* p : v) {
            uint64_t old = owner(p)->exchange(kOwned | static_cast<uint64_t>(t), std::memory_order_acq_rel);
            if ((old & kTagMask) == kOwned) bad_owner.fetch_add(1);
          }
          held.push_back(std::move(v));
        } else {
          std::vector<void*> v = std::move(held.back());
          held.pop_back();
          for (void* p : v) {
            uint64_t old = owner(p)->exchange(kFree, std::memory_order_acq_rel);
            if (old != (kOwned | static_cast<uint64_t>(t))) bad_owner.fetch_add(1);
          }
          transfer_insert_range(cl, to_chain(v), static_cast<int>(batch));
          ops.fetch_add(1, std::memory_order_relaxed);
        }
      }
      for (std::vector<void*>& v : held) {
        for (void* p : v) owner(p)->store(kFree, std::memory_order_relaxed);
        transfer_insert_range(cl, to_chain(v), static_cast<int>(batch));
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(bad_owner.load() == 0);
  CHECK(bad_length.load() == 0);
  const TransferCounters c1 = counters();
  CHECK((c1.hits - c0.hits) + (c1.misses - c0.misses) == ops.load());
  CHECK(c1.hits - c0.hits > 0);
  // Everything came back: what the ring holds plus the central cache's.
  CHECK(central_outstanding(cl) == out0 + static_cast<long long>(transfer_class_objects(cl)));
  // No object twice in the ring.
  std::set<void*> seen;
  size_t n = 0;
  for (;;) {
    void* head = nullptr;
    if (transfer_class_objects(cl) == 0) break;
    REQUIRE(transfer_remove_range(cl, &head, static_cast<int>(batch)) == static_cast<int>(batch));
    for (void* p : chain_to_vector(head, batch)) {
      seen.insert(p);
      ++n;
    }
    central_insert_range(cl, head, static_cast<int>(batch));
  }
  CHECK(seen.size() == n);
  CHECK(central_outstanding(cl) == out0);
}

TEST_CASE("transfer cache: a child forked while threads use it can use it", "[transfer_cache][fork]") {
  // Other threads insert and remove as fast as they can, so forks land in the
  // middle of their slot operations; the child must find every ring usable:
  // exactly `slots` batches fit, and they come out again.
  const uint32_t cl = size_to_class(48);
  const uint32_t cl2 = size_to_class(512);  // 2 slots: every operation is near a lap
  am_free(am_malloc(16));  // initialised: the fork handlers are installed
  transfer_cache_drain_all();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t c = t == 0 ? cl2 : cl;
      while (!stop.load(std::memory_order_relaxed)) {
        void* head = nullptr;
        int got = transfer_remove_range(c, &head, static_cast<int>(batch_of(c)));
        if (got == static_cast<int>(batch_of(c))) transfer_insert_range(c, head, got);
      }
    });
  }
  for (int f = 0; f < 40; ++f) {
    int status = run_in_child([&] {
      for (uint32_t c : {cl, cl2}) {
        const uint32_t slots = transfer_class_slots(c), b = batch_of(c);
        transfer_cache_drain_all();
        if (transfer_class_objects(c) != 0) return 10;
        std::vector<void*> batches;
        const TransferCounters c0 = transfer_cache_counters();
        for (uint32_t i = 0; i < slots; ++i) {
          void* head = nullptr;
          if (central_remove_range(c, &head, static_cast<int>(b)) != static_cast<int>(b)) return 11;
          batches.push_back(head);
          transfer_insert_range(c, head, static_cast<int>(b));
        }
        if (transfer_cache_counters().hits != c0.hits + slots) return 12;
        if (transfer_class_objects(c) != static_cast<size_t>(slots) * b) return 13;
        for (uint32_t i = 0; i < slots; ++i) {
          void* head = nullptr;
          if (transfer_remove_range(c, &head, static_cast<int>(b)) != static_cast<int>(b)) return 14;
          if (head != batches[i]) return 15;
        }
        if (transfer_cache_counters().hits != c0.hits + 2 * slots) return 16;
      }
      return 0;
    });
    INFO("fork " << f);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  stop.store(true);
  for (std::thread& th : threads) th.join();
  transfer_cache_drain_all();
}

TEST_CASE("transfer cache: AMMALLOC_TRANSFER_CACHE=0 turns it off", "[transfer_cache]") {
  // The option is read once at init: run this program again with it set, for
  // the hidden test case below only.
  int status = run_in_child([] {
    setenv("AMMALLOC_TRANSFER_CACHE", "0", 1);
    execl("/proc/self/exe", "test_transfer_cache", "[transfer_off]", "--warn", "NoTests",
          static_cast<char*>(nullptr));
    return 99;
  });
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("transfer cache off (run by the test above)", "[.][transfer_off]") {
  const uint32_t cl = size_to_class(80);
  const uint32_t batch = batch_of(cl);
  am_free(am_malloc(16));  // initialised: options read
  REQUIRE(option(kOptTransferCache) == 0);
  CHECK_FALSE(transfer_cache_enabled());
  const TransferCounters c0 = counters();
  const size_t acq0 = central_lock_acquisitions();
  std::vector<void*> b = central_batch(cl);
  transfer_insert_range(cl, to_chain(b), static_cast<int>(batch));
  CHECK(transfer_class_objects(cl) == 0);
  void* head = nullptr;
  REQUIRE(transfer_remove_range(cl, &head, static_cast<int>(batch)) == static_cast<int>(batch));
  CHECK(central_lock_acquisitions() == acq0 + 3);
  CHECK(counters().hits == c0.hits);
  CHECK(counters().misses == c0.misses);
  central_insert_range(cl, head, static_cast<int>(batch));
}

// manythreads — many more threads than cores (bench.sh runs 64 and 256 on a
// 2-core box). Each thread keeps its own working set of kSlots objects of
// 16 B..8 KiB (bench::skewed_size) and replaces a random slot per op; about
// 20% of the objects it drops are handed to another thread (chosen at random)
// through that thread's inbox, and the receiver frees them. A fixed total
// number of ops is split among the threads, so the 64- and 256-thread runs do
// the same work: what differs is the number of per-thread caches the allocator
// keeps (memory, start-up cost of each thread's first allocations) and how it
// copes with remote frees spread over many owners while threads are preempted
// all the time.
//
// Inboxes are lock-free intrusive stacks (multi-producer push with a CAS, the
// owner takes the whole stack with one exchange, so there is no ABA). A handed
// object is checked by its owner, then its first 16 bytes are overwritten with
// the link and its size; the receiver checks the size and the object's last
// stamp byte before freeing. After its last op a thread frees its own slots,
// waits until every thread has stopped handing objects off, then empties its
// inbox a last time.
//
// Deterministic: every thread's sizes and hand-off decisions come from its own
// fixed-seed PRNG; the op count printed is threads * ops-per-thread.
//   usage: manythreads [scale] [threads]
#include <barrier>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr int kSlots = 512;         // objects alive per thread (~150 KiB at ~300 B each)
constexpr uint64_t kHandoffPct = 20;  // percentage of dropped objects freed by another thread
constexpr uint64_t kDrainEvery = 64;  // ops between looks at the inbox

struct Handed {  // the first 16 bytes of a handed-off object
  Handed* next;
  size_t size;
};

struct alignas(64) Inbox {
  std::atomic<Handed*> head{nullptr};
};

struct Shared {
  std::vector<Inbox> inbox;
  std::barrier<> done;
  std::atomic<uint64_t> handed{0}, remote_freed{0};
  Shared(int n) : inbox(size_t(n)), done(n) {}
};

void push(Inbox& box, void* p, size_t n) {
  auto* h = static_cast<Handed*>(p);
  h->size = n;
  Handed* old = box.head.load(std::memory_order_relaxed);
  do {
    h->next = old;
  } while (!box.head.compare_exchange_weak(old, h, std::memory_order_release, std::memory_order_relaxed));
}

uint64_t drain(Inbox& box) {
  Handed* h = box.head.exchange(nullptr, std::memory_order_acquire);
  uint64_t n = 0;
  while (h) {
    Handed* next = h->next;
    size_t sz = h->size;
    if (sz < 16 || sz > 8192) bench::die("handed-off object has a wrong size field", h);
    // The stamp's last byte lies past the 16 overwritten bytes when sz > 16.
    if (sz > 16 && static_cast<unsigned char*>(static_cast<void*>(h))[sz - 1] !=
                       static_cast<unsigned char>(bench::stamp_value(h, sz) >> 56))
      bench::die("handed-off object lost its contents", h);
    std::free(h);
    h = next;
    ++n;
  }
  return n;
}

void worker(Shared* sh, int self, uint64_t ops, uint64_t seed) {
  const int nthreads = int(sh->inbox.size());
  bench::Rng rng(seed);
  void* slot[kSlots] = {};
  size_t len[kSlots] = {};
  uint64_t received = 0, handed = 0;
  for (uint64_t i = 0; i < ops; i++) {
    int s = int(rng.below(kSlots));
    if (slot[s]) {
      bench::verify(slot[s], len[s], "object lost its contents");
      if (nthreads > 1 && rng.below(100) < kHandoffPct) {
        int to = int((uint64_t(self) + 1 + rng.below(uint64_t(nthreads - 1))) % uint64_t(nthreads));
        push(sh->inbox[size_t(to)], slot[s], len[s]);
        ++handed;
      } else {
        std::free(slot[s]);
      }
    }
    size_t sz = bench::skewed_size(rng);
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, sz);
    slot[s] = p;
    len[s] = sz;
    if (i % kDrainEvery == kDrainEvery - 1) received += drain(sh->inbox[size_t(self)]);
  }
  for (int s = 0; s < kSlots; s++)
    if (slot[s]) {
      bench::verify(slot[s], len[s], "object lost its contents");
      std::free(slot[s]);
    }
  sh->handed.fetch_add(handed, std::memory_order_relaxed);
  sh->done.arrive_and_wait();  // nobody pushes after this
  received += drain(sh->inbox[size_t(self)]);
  sh->remote_freed.fetch_add(received, std::memory_order_relaxed);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t per = bench::scaled(16e6, a.scale, 2000) / uint64_t(a.threads) + 1;
  Shared sh(a.threads);
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  th.reserve(size_t(a.threads));
  for (int i = 0; i < a.threads; i++) th.emplace_back(worker, &sh, i, per, uint64_t(i + 1));
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  for (auto& box : sh.inbox)
    if (box.head.load() != nullptr) bench::die("an inbox is not empty at the end", &box);
  if (sh.handed.load() != sh.remote_freed.load()) bench::die("handed-off objects were lost", nullptr);
  std::fprintf(stderr, "manythreads: %d threads, %llu ops each, %llu objects freed by another thread\n",
               a.threads, (unsigned long long)per, (unsigned long long)sh.remote_freed.load());
  bench::report("manythreads: per-thread working sets of 16 B..8 KiB, ~20% of frees by another thread",
                per * uint64_t(a.threads), t1 - t0);
  return 0;
}

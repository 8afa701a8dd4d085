// xthread — producer -> consumer cross-thread frees.  threads/2 pairs (at
// least one); in each pair the producer mallocs objects of 16..512 B, stamps
// them and pushes the pointers through a bounded single-producer/single-
// consumer ring; the consumer pops, checks the stamp and frees.  Every free is
// remote: the producer's cache drains all the time and the consumer's
// overflows, so memory must flow back through the allocator's shared tiers.
//   usage: xthread [scale] [threads]
#include <sched.h>

#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr size_t kCap = 1024;  // power of two

struct alignas(64) Ring {
  alignas(64) std::atomic<uint64_t> head{0};  // written by the consumer
  alignas(64) std::atomic<uint64_t> tail{0};  // written by the producer
  alignas(64) void* slot[kCap];
  size_t len[kCap];
};

void producer(Ring* r, uint64_t n, uint64_t seed) {
  bench::Rng rng(seed);
  uint64_t tail = 0, head_cache = 0;
  for (uint64_t i = 0; i < n; i++) {
    size_t sz = rng.range(16, 512);
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, sz);
    int spins = 0;
    while (tail - head_cache >= kCap) {
      head_cache = r->head.load(std::memory_order_acquire);
      if (tail - head_cache >= kCap && ++spins > 64) {
        sched_yield();
        spins = 0;
      }
    }
    r->slot[tail % kCap] = p;
    r->len[tail % kCap] = sz;
    r->tail.store(++tail, std::memory_order_release);
  }
}

void consumer(Ring* r, uint64_t n) {
  uint64_t head = 0, tail_cache = 0;
  while (head < n) {
    int spins = 0;
    while (head == tail_cache) {
      tail_cache = r->tail.load(std::memory_order_acquire);
      if (head == tail_cache && ++spins > 64) {
        sched_yield();
        spins = 0;
      }
    }
    while (head < tail_cache) {
      void* p = r->slot[head % kCap];
      size_t sz = r->len[head % kCap];
      bench::verify(p, sz, "pattern lost before remote free");
      std::free(p);
      ++head;
    }
    r->head.store(head, std::memory_order_release);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  int pairs = a.threads / 2 < 1 ? 1 : a.threads / 2;
  const uint64_t per = bench::scaled(20e6, a.scale, 1000) / pairs;
  std::vector<Ring*> rings;
  for (int i = 0; i < pairs; i++) rings.push_back(new Ring);

  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < pairs; i++) {
    th.emplace_back(consumer, rings[i], per);
    th.emplace_back(producer, rings[i], per, uint64_t(i + 1));
  }
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  for (auto* r : rings) delete r;
  bench::report("xthread: producer->consumer remote frees, 16..512 B", per * pairs, t1 - t0);
  return 0;
}

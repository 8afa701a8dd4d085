// falseshare — passive and active false sharing (after Hoard's cache-scratch).
// Each round, the main thread allocates one small (8 B) object per worker, back
// to back, so they share cache lines, and hands one to each worker.  A worker
// writes its object hard, frees it, then repeatedly allocates its own 8-byte
// object, writes it hard and frees it.  An allocator that gives the freed
// foreign object (or a neighbour of another thread's object) back to the
// worker makes the workers' cores fight over one cache line; one that keeps
// each thread's small objects on lines of their own does not.
//   usage: falseshare [scale] [threads]
#include <barrier>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr int kObjSize = 8;
constexpr int kAllocsPerRound = 50;
constexpr uint64_t kWrites = 4000;

void write_hard(void* p, uint64_t k) {
  volatile uint64_t* c = static_cast<volatile uint64_t*>(p);
  *c = 0;
  for (uint64_t i = 0; i < k; i++) *c = *c + 1;
  if (*c != k) bench::die("counter lost writes", p);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const int T = a.threads;
  const uint64_t rounds = bench::scaled(10000, a.scale, 10);
  std::vector<void*> handed(T);
  std::barrier sync(T + 1);

  auto worker = [&](int id) {
    for (uint64_t r = 0; r < rounds; r++) {
      sync.arrive_and_wait();  // main has filled handed[]
      void* p = handed[id];
      write_hard(p, kWrites);
      std::free(p);
      for (int i = 0; i < kAllocsPerRound; i++) {
        void* q = std::malloc(kObjSize);
        bench::check_alloc(q, "malloc returned NULL");
        write_hard(q, kWrites);
        std::free(q);
      }
      sync.arrive_and_wait();  // round done
    }
  };

  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < T; i++) th.emplace_back(worker, i);
  for (uint64_t r = 0; r < rounds; r++) {
    for (int i = 0; i < T; i++) {
      handed[i] = std::malloc(kObjSize);
      bench::check_alloc(handed[i], "malloc returned NULL");
    }
    sync.arrive_and_wait();
    sync.arrive_and_wait();
  }
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  bench::report("falseshare: 8-byte objects handed out / reused and written hard by workers",
                rounds * T * (kAllocsPerRound + 1), t1 - t0);
  return 0;
}

// threadchurn — short-lived threads: rounds of `threads` threads are created
// and joined; each allocates a little (200 objects, 16..1024 B), frees most of
// them itself and hands 20 to the main thread, which frees them after the join
// (so objects outlive the thread that made them).  Measures thread-cache
// set-up and tear-down, and whether dead threads' caches leak memory.
//   usage: threadchurn [scale] [threads]
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr int kAllocs = 200, kHandOff = 20;

struct Out {
  void* p[kHandOff];
  size_t n[kHandOff];
};

void body(Out* out, uint64_t seed) {
  bench::Rng rng(seed);
  void* p[kAllocs];
  size_t n[kAllocs];
  for (int i = 0; i < kAllocs; i++) {
    n[i] = rng.range(16, 1024);
    p[i] = std::malloc(n[i]);
    bench::check_alloc(p[i], "malloc returned NULL");
    bench::stamp(p[i], n[i]);
  }
  for (int i = 0; i < kAllocs; i++) {
    if (i < kHandOff) {
      out->p[i] = p[i];
      out->n[i] = n[i];
    } else {
      bench::verify(p[i], n[i], "pattern lost before free");
      std::free(p[i]);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t rounds = bench::scaled(10000, a.scale, 10);
  std::vector<Out> outs(a.threads);
  double t0 = bench::now_s();
  for (uint64_t r = 0; r < rounds; r++) {
    std::vector<std::thread> th;
    th.reserve(a.threads);
    for (int i = 0; i < a.threads; i++) th.emplace_back(body, &outs[i], r * 1000 + i);
    for (auto& t : th) t.join();
    for (Out& o : outs)
      for (int k = 0; k < kHandOff; k++) {
        bench::verify(o.p[k], o.n[k], "pattern lost before free (thread gone)");
        std::free(o.p[k]);
      }
  }
  double t1 = bench::now_s();
  bench::report("threadchurn: create/join threads that each allocate a little",
                rounds * a.threads, t1 - t0);
  return 0;
}

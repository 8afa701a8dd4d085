// pairs_mixed — single thread, malloc/free pairs of mixed sizes 16 B..1 KiB
// (uniform).  A ring of 16 live slots: each op frees the oldest object and
// allocates a new one of a different size, so frees are FIFO, not LIFO, and
// many size classes are hot at once.  Objects are stamped and checked.
//   usage: pairs_mixed [scale] [threads(ignored)]
#include "bench_common.h"

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t n = bench::scaled(150e6, a.scale, 1000);
  constexpr int kSizes = 4096, kRing = 16;
  static size_t sizes[kSizes];
  bench::Rng rng(7);
  for (auto& s : sizes) s = rng.range(16, 1024);

  void* ring[kRing];
  size_t ring_size[kRing];
  for (int i = 0; i < kRing; i++) {
    ring_size[i] = sizes[i];
    ring[i] = std::malloc(ring_size[i]);
    bench::check_alloc(ring[i], "malloc returned NULL");
    bench::stamp(ring[i], ring_size[i]);
  }
  double t0 = bench::now_s();
  for (uint64_t i = 0; i < n; i++) {
    unsigned slot = unsigned(i) % kRing;
    bench::verify(ring[slot], ring_size[slot], "pattern lost before free");
    std::free(ring[slot]);
    size_t sz = sizes[(i * 7 + 3) % kSizes];
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, sz);
    ring[slot] = p;
    ring_size[slot] = sz;
  }
  double t1 = bench::now_s();
  for (int i = 0; i < kRing; i++) {
    bench::verify(ring[i], ring_size[i], "pattern lost before free");
    std::free(ring[i]);
  }
  bench::report("pairs_mixed: malloc+free pairs, 16..1024 B, FIFO ring of 16", n, t1 - t0);
  return 0;
}

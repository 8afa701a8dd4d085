// pairs_fixed — single thread, malloc(64) immediately followed by free(), in a
// tight loop: the allocator's fast path and nothing else.  Every object is
// stamped and checked before it is freed.
//   usage: pairs_fixed [scale] [threads(ignored)]     (env PAIRS_SIZE overrides 64)
#include "bench_common.h"

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  size_t size = 64;
  if (const char* e = std::getenv("PAIRS_SIZE")) size = std::strtoul(e, nullptr, 10);
  if (size < 9) size = 9;
  const uint64_t n = bench::scaled(150e6, a.scale, 1000);

  // Warm-up: let the allocator initialise and fill its caches.
  for (int i = 0; i < 1000; i++) {
    void* p = std::malloc(size);
    bench::check_alloc(p, "malloc");
    bench::escape(p);
    std::free(p);
  }
  double t0 = bench::now_s();
  for (uint64_t i = 0; i < n; i++) {
    void* p = std::malloc(size);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, size);
    bench::escape(p);
    bench::verify(p, size, "pattern lost before free");
    std::free(p);
  }
  double t1 = bench::now_s();
  bench::report("pairs_fixed: malloc+free pairs", n, t1 - t0);
  return 0;
}

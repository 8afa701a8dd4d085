// churn — single thread, random-size churn over a large live set: 1M slots
// (at scale >= 1) filled with objects of 16 B..8 KiB skewed small (mean ~300 B,
// ~300 MB live), then random slots are replaced: free the old object (after
// checking its stamp), allocate a new one of a fresh random size.  Measures the
// allocator when its metadata and free lists do not fit in cache, and the RSS
// it needs to hold a fragmented live set.
//   usage: churn [scale] [threads(ignored)]
#include <vector>

#include "bench_common.h"

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const size_t slots = a.scale >= 1 ? 1u << 20 : bench::scaled(1u << 20, a.scale, 1u << 16);
  const uint64_t n = bench::scaled(6e6, a.scale, 1000);
  bench::Rng rng(42);
  std::vector<void*> ptr(slots);
  std::vector<uint32_t> len(slots);

  double t0 = bench::now_s();
  for (size_t i = 0; i < slots; i++) {
    size_t sz = bench::skewed_size(rng);
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, sz);
    ptr[i] = p;
    len[i] = uint32_t(sz);
  }
  for (uint64_t i = 0; i < n; i++) {
    size_t s = rng.below(slots);
    bench::verify(ptr[s], len[s], "pattern lost before free");
    std::free(ptr[s]);
    size_t sz = bench::skewed_size(rng);
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    bench::stamp(p, sz);
    ptr[s] = p;
    len[s] = uint32_t(sz);
  }
  for (size_t i = 0; i < slots; i++) {
    bench::verify(ptr[i], len[i], "pattern lost before free");
    std::free(ptr[i]);
  }
  double t1 = bench::now_s();
  bench::report("churn: random replacement in a 1M-slot live set, 16 B..8 KiB skewed small",
                n + 2 * slots, t1 - t0);
  return 0;
}

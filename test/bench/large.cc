// large — large buffers, 64 KiB..64 MiB (log-uniform), each written once per
// 4 KiB page right after allocation (the way real code fills a buffer) and
// checked page by page before it is freed.  Each thread keeps 4 buffers alive
// and replaces a random one per op.  Measures how the allocator gets large
// blocks from the OS, reuses them (or pays page faults again), and how much it
// keeps resident.
//   usage: large [scale] [threads]
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr int kLive = 4;

void worker(uint64_t n, uint64_t seed) {
  bench::Rng rng(seed);
  void* buf[kLive] = {};
  size_t len[kLive] = {};
  unsigned char tag[kLive] = {};
  for (uint64_t i = 0; i < n; i++) {
    int s = int(rng.below(kLive));
    if (buf[s]) {
      bench::verify_pages(buf[s], len[s], tag[s], "large buffer lost its contents");
      std::free(buf[s]);
    }
    size_t sz = bench::log_uniform(rng, 64 << 10, 64 << 20);
    void* p = std::malloc(sz);
    bench::check_alloc(p, "malloc returned NULL");
    unsigned char t = static_cast<unsigned char>(i * 31 + seed) | 1;
    bench::touch_pages(p, sz, t);
    buf[s] = p;
    len[s] = sz;
    tag[s] = t;
  }
  for (int s = 0; s < kLive; s++)
    if (buf[s]) {
      bench::verify_pages(buf[s], len[s], tag[s], "large buffer lost its contents");
      std::free(buf[s]);
    }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t per = bench::scaled(800, a.scale, 20) / a.threads + 1;
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < a.threads; i++) th.emplace_back(worker, per, uint64_t(i + 1));
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  bench::report("large: 64 KiB..64 MiB buffers, one write per page", per * a.threads, t1 - t0);
  return 0;
}

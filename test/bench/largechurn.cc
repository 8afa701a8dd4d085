// largechurn — the large buffers of inference steps: per step, KV-cache blocks
// (2 MiB) and activation buffers of 1..64 MiB, 64-byte aligned, each written
// once per 4 KiB page, checked, and all freed at the end of the step. The next
// step asks for the same sizes again (every 16th step the sequence length
// changes, so do the sizes). Measures whether an allocator keeps the pages of
// the previous step (no new page faults, no madvise/munmap churn) and what
// that costs in resident memory. Run it under /usr/bin/time for the minor
// faults (scripts/bench-large.sh does).
//   usage: largechurn [scale] [threads]
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

struct Buf {
  void* p;
  size_t n;
  unsigned char tag;
};

void worker(uint64_t steps, uint64_t seed) {
  bench::Rng rng(seed);
  std::vector<Buf> bufs;
  bufs.reserve(64);
  size_t seq = 256;
  for (uint64_t s = 0; s < steps; s++) {
    if (s % 16 == 15) seq = rng.range(128, 512);  // a new request: other shapes
    auto add = [&](size_t n) {
      n = (n + 63) & ~size_t(63);
      void* p = std::aligned_alloc(64, n);
      bench::check_alloc(p, "aligned_alloc returned NULL");
      unsigned char t = static_cast<unsigned char>(rng.next()) | 1;
      bench::touch_pages(p, n, t);
      bufs.push_back({p, n, t});
    };
    for (int k = 0; k < 8; k++) add(2 << 20);  // KV-cache blocks
    add(seq * 4096);                            // hidden states (0.5..2 MiB)
    add(seq * 4096 * 4);                        // MLP activations (2..8 MiB)
    add(seq * 4096 * 8);                        // attention scores (4..16 MiB)
    add(seq * 32768 * 4);                       // logits (16..64 MiB)
    for (const Buf& b : bufs) {
      bench::verify_pages(b.p, b.n, b.tag, "large buffer lost its contents");
      std::free(b.p);
    }
    bufs.clear();
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t per = bench::scaled(400, a.scale, 16) / a.threads + 1;
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < a.threads; i++) th.emplace_back(worker, per, uint64_t(i + 1));
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  bench::report("largechurn: per step 8 KV blocks of 2 MiB + activations 0.5..64 MiB, same sizes next step",
                per * a.threads, t1 - t0);
  return 0;
}

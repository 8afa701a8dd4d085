// realloc_growth — one buffer grown by realloc in 64 KiB steps to 256 MiB, the
// way a growing byte buffer, a std::vector-like array in C, a Python bytearray
// or a tokenizer's output grows. Each step writes the new 64 KiB (one byte per
// 4 KiB page) and the buffer's first and last pages are checked, so a copy
// that lost data fails. Counts how often realloc moved the block: an
// allocator that grows in place (or remaps) moves it rarely; one that always
// copies moves it at every step and copies ~512 GiB in all at scale 1.
// Threads run independent buffers.
//   usage: realloc_growth [scale] [threads]   (scale 1: 256 MiB per buffer)
#include <atomic>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr size_t kStep = 64 << 10;
std::atomic<uint64_t> g_moves{0};

void worker(size_t final_bytes, uint64_t seed) {
  unsigned char* buf = nullptr;
  size_t len = 0;
  uint64_t moves = 0;
  const unsigned char tag = static_cast<unsigned char>(seed * 37) | 1;
  while (len < final_bytes) {
    auto* q = static_cast<unsigned char*>(std::realloc(buf, len + kStep));
    bench::check_alloc(q, "realloc returned NULL");
    if (buf != nullptr && q != buf) ++moves;
    if (len != 0 && (q[0] != tag || q[len - 1] != tag)) bench::die("realloc lost the buffer's contents", q);
    buf = q;
    for (size_t i = len; i < len + kStep; i += 4096) buf[i] = tag;
    buf[len + kStep - 1] = tag;
    len += kStep;
  }
  std::free(buf);
  g_moves += moves;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const size_t final_bytes = bench::scaled(double(256 << 20) / kStep, a.scale, 16) * kStep;
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < a.threads; i++) th.emplace_back(worker, final_bytes, uint64_t(i + 1));
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  const uint64_t steps = final_bytes / kStep * a.threads;
  std::fprintf(stderr, "realloc_growth: %llu moves in %llu reallocs\n", (unsigned long long)g_moves.load(),
               (unsigned long long)steps);
  bench::report("realloc_growth: 64 KiB steps to 256 MiB", steps, t1 - t0);
  return 0;
}

// larson — a server simulation after Larson & Krishnan: one shared array of
// slots (64K per thread); every thread repeatedly picks a random slot,
// allocates a new object (16..1024 B, skewed small), stamps it, swaps it into
// the slot and checks and frees the object it displaced.  The displaced object
// was usually allocated by another thread, so objects die in other threads, and
// the live set stays constant.
//   usage: larson [scale] [threads]
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

size_t larson_size(bench::Rng& r) {
  uint64_t x = r.below(100);
  if (x < 70) return r.range(16, 128);
  if (x < 95) return r.range(129, 512);
  return r.range(513, 1024);
}

void* make(bench::Rng& r) {
  size_t sz = larson_size(r);
  void* p = std::malloc(sz);
  bench::check_alloc(p, "malloc returned NULL");
  bench::stamp(p, sz);
  static_cast<unsigned char*>(p)[8] = static_cast<unsigned char>(sz);  // low byte of size
  static_cast<unsigned char*>(p)[9] = static_cast<unsigned char>(sz >> 8);
  return p;
}

void kill(void* p) {
  auto* c = static_cast<unsigned char*>(p);
  size_t sz = size_t(c[8]) | size_t(c[9]) << 8;
  if (sz < 16 || sz > 1024) bench::die("object header corrupted", p);
  bench::verify(p, sz, "pattern lost before free");
  std::free(p);
}

void worker(std::atomic<void*>* slots, size_t nslots, uint64_t n, uint64_t seed) {
  bench::Rng rng(seed);
  for (uint64_t i = 0; i < n; i++) {
    void* p = make(rng);
    void* old = slots[rng.below(nslots)].exchange(p, std::memory_order_acq_rel);
    if (old) kill(old);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const size_t nslots = size_t(a.threads) << 16;
  const uint64_t per = bench::scaled(10e6, a.scale, 1000) / a.threads;
  auto* slots = new std::atomic<void*>[nslots];
  bench::Rng rng(99);
  // Fill from the main thread: the first round of frees is remote for everyone.
  for (size_t i = 0; i < nslots; i++) slots[i].store(make(rng), std::memory_order_relaxed);

  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < a.threads; i++) th.emplace_back(worker, slots, nslots, per, uint64_t(i + 1));
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  for (size_t i = 0; i < nslots; i++) kill(slots[i].load(std::memory_order_relaxed));
  delete[] slots;
  bench::report("larson: random slot replacement across threads, 16..1024 B", per * a.threads,
                t1 - t0);
  return 0;
}

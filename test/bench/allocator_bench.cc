// allocator_bench — AC-11 / NFR-1: AmmallocAllocator vs CPUAllocator in ONE
// process, on tensor-metadata-sized requests (8 B .. 4 KiB).
//
// Usage: allocator_bench [pairs] [rounds]
//   pairs   allocate+free pairs per thread per round (default 200000; CI smoke
//           runs use e.g. 2000)
//   rounds  repetitions; the median is reported (default 7)
//
// Each row is one workload (fixed 8 / 64 / 512 / 4096 B, or a mixed log-uniform
// 8..4096 B sequence) at 1 or 4 threads. Every round runs all four variants,
// in an order that rotates from round to round (interleaved, so drift in machine
// load hits all of them alike):
//   CPUAllocator       Allocator::allocate -> DataPtr -> destroy (virtual call,
//                      posix_memalign(64) + free, stats counters)
//   AmmallocAllocator  the same engine path over am_memalign(64) + am_free
//   raw posix_memalign / raw am_memalign: the bare calls, to show the wrapper cost
// A thread keeps a window of 8 blocks alive (allocate 8, touch each, free 8),
// like short-lived tensor metadata. Latency = a thread's wall time / pairs,
// averaged over the threads; with more threads than cores it includes waiting
// for a core, for every variant alike. The ratio column is cpu / ammalloc:
// the NFR-1 target is >= 2 (>= 50% lower latency).
//
// A program, not a timed test: it always exits 0 unless an allocator misbehaves
// (then it aborts with a message).
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "ammalloc/allocator.h"
#include "ammalloc/ammalloc.h"

namespace {

using ammalloc::Allocator;
using ammalloc::DataPtr;

constexpr int kWindow = 8;
constexpr std::size_t kSizeCount = 4096;  // power of two: indexes wrap with a mask

enum Variant { kCpu, kAmmalloc, kRawPosix, kRawAm, kVariants };

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "allocator_bench: FAILED: %s\n", what);
  std::abort();
}

double now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

// xorshift64*: deterministic sizes.
std::uint64_t next_rand(std::uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545F4914F6CDD1Dull;
}

struct Workload {
  const char* name;
  std::vector<std::size_t> sizes;  // kSizeCount entries
};

std::vector<Workload> make_workloads() {
  std::vector<Workload> w;
  static const struct {
    const char* name;
    std::size_t size;
  } kFixed[] = {{"8 B", 8}, {"64 B", 64}, {"512 B", 512}, {"4096 B", 4096}};
  for (const auto& f : kFixed) w.push_back({f.name, std::vector<std::size_t>(kSizeCount, f.size)});
  // Log-uniform over 8..4096: as many 8..15 B requests as 2048..4095 B ones.
  Workload mixed{"mixed 8..4096 B", {}};
  std::uint64_t s = 0x5eed;
  for (std::size_t i = 0; i < kSizeCount; ++i) {
    const unsigned b = 3 + unsigned(next_rand(s) % 9);  // 2^3 .. 2^11
    const std::size_t base = std::size_t{1} << b;
    mixed.sizes.push_back(base + next_rand(s) % (base + 1));  // [2^b, 2^(b+1)]
  }
  w.push_back(std::move(mixed));
  return w;
}

// One thread's work for one variant. Every block is touched (first and last
// byte) so that neither the compiler nor a lazy allocator can skip it.
void run_thread(Variant v, const std::size_t* sizes, std::size_t offset, std::size_t pairs) {
  const std::size_t rounds = pairs / kWindow;
  std::size_t idx = offset;
  if (v == kCpu || v == kAmmalloc) {
    Allocator* a = v == kCpu ? static_cast<Allocator*>(&ammalloc::cpu_allocator())
                             : static_cast<Allocator*>(&ammalloc::ammalloc_allocator());
    DataPtr win[kWindow];
    for (std::size_t r = 0; r < rounds; ++r) {
      for (int k = 0; k < kWindow; ++k) {
        const std::size_t n = sizes[idx++ & (kSizeCount - 1)];
        win[k] = a->allocate(n);
        auto* c = static_cast<unsigned char*>(win[k].get());
        c[0] = static_cast<unsigned char>(k);
        c[n - 1] = static_cast<unsigned char>(k);
      }
      for (int k = 0; k < kWindow; ++k) win[k].clear();
    }
  } else {
    void* win[kWindow];
    for (std::size_t r = 0; r < rounds; ++r) {
      for (int k = 0; k < kWindow; ++k) {
        const std::size_t n = sizes[idx++ & (kSizeCount - 1)];
        if (v == kRawPosix) {
          if (::posix_memalign(&win[k], ammalloc::kAlignment, n) != 0) die("posix_memalign");
        } else {
          win[k] = ::am_memalign(ammalloc::kAlignment, n);
          if (win[k] == nullptr) die("am_memalign");
        }
        auto* c = static_cast<unsigned char*>(win[k]);
        c[0] = static_cast<unsigned char>(k);
        c[n - 1] = static_cast<unsigned char>(k);
        asm volatile("" : : "r"(c) : "memory");
      }
      for (int k = 0; k < kWindow; ++k) {
        if (v == kRawPosix)
          std::free(win[k]);
        else
          ::am_free(win[k]);
      }
    }
  }
}

// Mean over threads of (thread wall time / pairs), in ns.
double measure(Variant v, const Workload& w, int threads, std::size_t pairs) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> ns(std::size_t(threads), 0.0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const double t0 = now_ns();
      run_thread(v, w.sizes.data(), std::size_t(t) * 1031, pairs);
      ns[std::size_t(t)] = (now_ns() - t0) / double(pairs / kWindow * kWindow);
    });
  }
  while (ready.load() != threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  double sum = 0;
  for (double x : ns) sum += x;
  return sum / threads;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::size_t parse(const char* s, std::size_t lo, std::size_t hi, const char* prog) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "usage: %s [pairs per thread per round >= %d] [rounds >= 1]\n", prog, kWindow);
    std::exit(2);
  }
  return std::size_t(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t pairs = 200000, rounds = 7;
  if (argc > 1) pairs = parse(argv[1], kWindow, std::size_t{1} << 40, argv[0]);
  if (argc > 2) rounds = parse(argv[2], 1, 1000, argv[0]);

  const std::vector<Workload> workloads = make_workloads();
  const int thread_counts[] = {1, 4};

  ammalloc::cpu_allocator().reset();
  ammalloc::ammalloc_allocator().reset();

  std::printf("## AmmallocAllocator vs CPUAllocator (AC-11, NFR-1)\n\n");
  std::printf("%zu allocate+free pairs per thread per round, window of %d live blocks, "
              "median of %zu interleaved rounds, %u hardware threads. "
              "ns = wall time per pair per thread; ratio = CPUAllocator / AmmallocAllocator "
              "(target >= 2.00).\n\n",
              pairs / kWindow * kWindow, kWindow, rounds, std::thread::hardware_concurrency());
  std::printf("| workload | threads | CPUAllocator ns | AmmallocAllocator ns | ratio cpu/ammalloc |"
              " raw posix_memalign ns | raw am_memalign ns |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);

  double min_ratio = 1e300;
  for (const Workload& w : workloads) {
    for (int threads : thread_counts) {
      std::vector<double> results[kVariants];
      for (std::size_t r = 0; r < rounds; ++r) {
        for (int i = 0; i < kVariants; ++i) {
          const auto v = Variant((std::size_t(i) + r) % kVariants);
          results[v].push_back(measure(v, w, threads, pairs));
        }
      }
      double med[kVariants];
      for (int v = 0; v < kVariants; ++v) med[v] = median(results[v]);
      const double ratio = med[kCpu] / med[kAmmalloc];
      min_ratio = std::min(min_ratio, ratio);
      std::printf("| %s | %d | %.1f | %.1f | %.2f | %.1f | %.1f |\n", w.name, threads, med[kCpu], med[kAmmalloc],
                  ratio, med[kRawPosix], med[kRawAm]);
      std::fflush(stdout);
    }
  }

  // Sanity: every block went back through its own deleter.
  for (Allocator* a : {static_cast<Allocator*>(&ammalloc::cpu_allocator()),
                       static_cast<Allocator*>(&ammalloc::ammalloc_allocator())}) {
    const ammalloc::AllocatorStats s = a->stats();
    if (s.allocated_bytes != 0 || s.allocation_count != s.free_count) die("stats do not balance");
  }
  std::printf("\nminimum ratio: %.2f (%s the NFR-1 target of 2.00)\n", min_ratio,
              min_ratio >= 2.0 ? "meets" : "below");
  return 0;
}

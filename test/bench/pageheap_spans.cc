// pageheap_spans: the cost of a large malloc+free when the heap holds many
// free large holes (issue 13, item 4: an ordered page heap).
//
// For each N (default 100, 1000, 10000, 100000): 2N blocks of distinct sizes
// from 300 KiB to 4 MiB are allocated (never touched: no RSS), every other
// one is freed (N free holes between live blocks), then malloc+free pairs are
// timed for (a) a size larger than every hole (5 MiB: "no fit") and (b) one
// that many holes fit (2 MiB: "fit"). Prints one line per N:
//   spans=<N> nofit_us=<us per pair> fit_us=<us per pair> [lock_mean_ns=.. lock_max_ns=..]
// (median of 7 batches). Preload any allocator (scripts/bench.sh --spans runs
// all five). Built by meson with -DPAGEHEAP_SPANS_CORE against the core
// library (am_malloc/am_free), it also prints the page-heap lock's hold time
// over the timed pairs (page_heap_time_lock): the figure that must stay flat
// from 100 to 100,000 spans.
//
// usage: pageheap_spans [N...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#ifdef PAGEHEAP_SPANS_CORE
#include "ammalloc/ammalloc.h"
#include "heap/page_heap.h"
#define BENCH_MALLOC am_malloc
#define BENCH_FREE am_free
#else
#define BENCH_MALLOC malloc
#define BENCH_FREE free
#endif

namespace {

using Clock = std::chrono::steady_clock;

volatile uintptr_t g_sink;

double pairs_us(size_t size, int pairs) {
  auto t0 = Clock::now();
  for (int i = 0; i < pairs; ++i) {
    void* p = BENCH_MALLOC(size);
    if (p == nullptr) return -1;
    g_sink = reinterpret_cast<uintptr_t>(p);
    BENCH_FREE(p);
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / pairs;
}

double median_us(size_t size, int batches, int pairs) {
  std::vector<double> v;
  for (int b = 0; b < batches; ++b) v.push_back(pairs_us(size, pairs));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(strtoull(argv[i], nullptr, 10));
  if (counts.empty()) counts = {100, 1000, 10000, 100000};
  constexpr size_t kLo = 300 << 10, kHi = 4 << 20;
  constexpr size_t kNoFit = 5 << 20, kFit = 2 << 20;
  for (size_t n : counts) {
    std::vector<void*> blocks(2 * n, nullptr);
    size_t made = 0;
    for (; made < 2 * n; ++made) {
      // Distinct sizes spread over [kLo, kHi), interleaved so that neighbours
      // differ (the holes are not sorted by address).
      size_t k = (made * 7919) % (2 * n);
      size_t size = kLo + (kHi - kLo) * k / (2 * n) + k % 4096;
      blocks[made] = BENCH_MALLOC(size);
      if (blocks[made] == nullptr) break;
    }
    if (made < 2 * n) {
      printf("spans=%zu nofit_us=NA fit_us=NA (malloc failed at block %zu)\n", n, made);
      for (size_t i = 0; i < made; ++i) BENCH_FREE(blocks[i]);
      fflush(stdout);
      continue;
    }
    for (size_t i = 0; i < 2 * n; i += 2) {
      BENCH_FREE(blocks[i]);
      blocks[i] = nullptr;
    }
    // Fewer pairs where one may cost a millisecond (a linear search).
    const int pairs = n >= 10000 ? 50 : 200;
    pairs_us(kNoFit, 5);
    pairs_us(kFit, 5);
#ifdef PAGEHEAP_SPANS_CORE
    am::page_heap_time_lock(true);
#endif
    double nofit = median_us(kNoFit, 7, pairs);
    double fit = median_us(kFit, 7, pairs);
    printf("spans=%zu nofit_us=%.3f fit_us=%.3f", n, nofit, fit);
#ifdef PAGEHEAP_SPANS_CORE
    am::PageHeapLockTiming t = am::page_heap_take_lock_timing();
    am::page_heap_time_lock(false);
    printf(" lock_holds=%llu lock_mean_ns=%.0f lock_max_ns=%llu", static_cast<unsigned long long>(t.count),
           t.count ? static_cast<double>(t.total_ns) / static_cast<double>(t.count) : 0.0,
           static_cast<unsigned long long>(t.max_ns));
#endif
    printf("\n");
    fflush(stdout);
    for (void* p : blocks)
      if (p) BENCH_FREE(p);
  }
  return 0;
}

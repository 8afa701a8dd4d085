// Sampler (lib/observe/sampler.h): the libm-free logarithm, the exponential intervals,
// the countdown's effect (how many allocations are sampled), and what a
// sampled object is: its own page-aligned span, alignment honoured, usable size
// page-rounded, its free found and counted.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "front/alloc_slow.h"
#include "ammalloc/ammalloc.h"
#include "core/config.h"
#include "core/pagemap.h"
#include "observe/sampler.h"
#include "core/span.h"

namespace {

// The profile header's in-use and allocated object counts.
struct Header {
  long inuse_objs = -1, inuse_bytes = -1, alloc_objs = -1, alloc_bytes = -1;
};
Header profile_header() {
  static char buf[1 << 20];
  am_heap_profile_text(buf, sizeof buf, 0);
  Header h;
  sscanf(buf, "heap profile: %ld: %ld [%ld: %ld]", &h.inuse_objs, &h.inuse_bytes, &h.alloc_objs, &h.alloc_bytes);
  return h;
}

bool sampled(void* p) {
  am::Span* s = am::large_span_of(p);
  return s != nullptr && s->sampled;
}

}  // namespace

TEST_CASE("sampler_log matches ln over the whole range", "[sampler]") {
  for (double x : {1e-300, 1e-20, 1e-9, 0.001, 0.1, 0.5, 0.70710678, 0.9999999, 1.0, 1.5, 2.0, 10.0, 12345.678,
                   1e20, 1e300}) {
    INFO("x = " << x);
    double want = std::log(x);
    CHECK(std::fabs(am::sampler_log(x) - want) <= 1e-9 * (std::fabs(want) + 1));
  }
  for (uint64_t k = 1; k < (uint64_t{1} << 53); k = k * 3 + 1) {
    double u = static_cast<double>(k) * 0x1p-53;
    CHECK(std::fabs(am::sampler_log(u) - std::log(u)) <= 1e-9 * (std::fabs(std::log(u)) + 1));
  }
}

TEST_CASE("intervals are exponential with the configured mean", "[sampler]") {
  uint64_t rng = 12345;
  const int64_t mean = 512 * 1024;
  const int n = 200000;
  double sum = 0;
  int above_mean = 0, above_3 = 0;
  for (int i = 0; i < n; ++i) {
    int64_t v = am::sampler_draw_interval(&rng, mean);
    REQUIRE(v >= 1);
    REQUIRE(v <= 40 * mean);
    sum += static_cast<double>(v);
    above_mean += v > mean;
    above_3 += v > 3 * mean;
  }
  CHECK(sum / n == Approx(mean).epsilon(0.01));
  CHECK(above_mean / double(n) == Approx(std::exp(-1.0)).epsilon(0.02));  // P(X > m) = 1/e
  CHECK(above_3 / double(n) == Approx(std::exp(-3.0)).epsilon(0.05));
}

TEST_CASE("the countdown samples bytes at the configured rate", "[sampler]") {
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 64 * 1024) == 0);
  REQUIRE(am_heap_profile_start(nullptr) == 0);
  Header before = profile_header();
  // 64 MiB in 512-byte blocks: 1024 samples expected (P(sample) = 1 - e^-(512/64K)).
  const int n = 131072;
  const size_t size = 512;
  static void* blocks[131072];
  int marked = 0;
  for (int i = 0; i < n; ++i) {
    blocks[i] = am_malloc(size);
    REQUIRE(blocks[i] != nullptr);
    marked += sampled(blocks[i]);
  }
  Header mid = profile_header();
  long samples = mid.alloc_objs - before.alloc_objs;
  double expect = n * (1 - std::exp(-double(size) / (64 * 1024)));
  INFO("samples " << samples << ", expected " << expect);
  CHECK(samples == marked);
  CHECK(std::fabs(samples - expect) < 5 * std::sqrt(expect));
  CHECK(mid.inuse_objs - before.inuse_objs == samples);
  for (int i = 0; i < n; ++i) am_free(blocks[i]);
  Header after = profile_header();
  CHECK(after.inuse_objs == before.inuse_objs);  // every sampled free was found
  CHECK(after.alloc_objs == mid.alloc_objs);
  am_heap_profile_stop();
  // Stopped: nothing more is sampled.
  for (int i = 0; i < 1000; ++i) am_free(am_malloc(100000));
  CHECK(profile_header().alloc_objs == after.alloc_objs);
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 512 * 1024) == 0);
}

TEST_CASE("a sampled object is a span of its own, aligned as asked", "[sampler]") {
  // A one-byte mean: every allocation of a few bytes or more is sampled.
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 1) == 0);
  REQUIRE(am_heap_profile_start(nullptr) == 0);
  am_free(am_malloc(1));  // this thread re-arms its countdown at this first miss
  Header before = profile_header();
  for (size_t align : {size_t{16}, size_t{64}, size_t{4096}, size_t{8192}, size_t{65536}, size_t{1} << 21}) {
    for (size_t size : {size_t{24}, size_t{1000}, size_t{100000}, size_t{300000}}) {
      INFO("align " << align << " size " << size);
      void* p = am_memalign(align, size);
      REQUIRE(p != nullptr);
      CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
      CHECK(reinterpret_cast<uintptr_t>(p) % am::kPageSize == 0);
      CHECK(sampled(p));
      CHECK(am_malloc_usable_size(p) == am::pages_for(size) * am::kPageSize);
      memset(p, 0xab, size);
      am_free(p);
    }
  }
  void* z = am_calloc(100, 10);  // calloc of a sampled block is zeroed
  REQUIRE(sampled(z));
  for (int i = 0; i < 1000; ++i) CHECK(static_cast<unsigned char*>(z)[i] == 0);
  void* r = am_realloc(z, 50000);  // realloc out of and into sampled blocks
  REQUIRE(r != nullptr);
  for (int i = 0; i < 1000; ++i) CHECK(static_cast<unsigned char*>(r)[i] == 0);
  am_free(r);
  void* q = nullptr;
  REQUIRE(am_posix_memalign(&q, 256, 777) == 0);
  CHECK(sampled(q));
  am_free_sized(q, 777);
  Header after = profile_header();
  CHECK(after.inuse_objs == before.inuse_objs);
  CHECK(after.alloc_objs - before.alloc_objs == 6 * 4 + 3);
  am_heap_profile_stop();
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 512 * 1024) == 0);
}

TEST_CASE("AMMALLOC_PROFILE_SAMPLE=0 refuses to start", "[sampler]") {
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 0) == 0);
  CHECK(am_heap_profile_start(nullptr) == EINVAL);
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 512 * 1024) == 0);
}

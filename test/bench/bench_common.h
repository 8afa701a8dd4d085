// bench_common.h — shared helpers for ammalloc's benchmark programs.
//
// Every benchmark is a standalone program that uses only the standard
// malloc/free/new/posix_memalign names, so that any allocator can be
// LD_PRELOADed under it (glibc, ammalloc, jemalloc, mimalloc, tcmalloc).
//
// Command line of every program:   PROG [scale] [threads]
//   scale    floating point; 1.0 = a real run (~2..10 s on a 2-core box),
//            0.1 = a smoke run (well under a second).  Default 1.0.
//   threads  worker threads for the multi-threaded programs (default 4).
//
// Output: exactly one line "result: <ops> ops in <seconds> s" on stdout
// (plus optional "info:" lines), exit status 0.  Memory is stamped with a
// pattern where that is cheap, and every mismatch aborts with a message, so a
// broken allocator fails loudly instead of producing a fast number.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bench {

struct Args {
  double scale = 1.0;
  int threads = 4;
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  if (argc > 1) {
    char* end = nullptr;
    a.scale = std::strtod(argv[1], &end);
    if (end == argv[1] || !(a.scale > 0) || a.scale > 1000) {
      std::fprintf(stderr, "usage: %s [scale>0] [threads>=1]\n", argv[0]);
      std::exit(2);
    }
  }
  if (argc > 2) {
    a.threads = std::atoi(argv[2]);
    if (a.threads < 1 || a.threads > 1024) {
      std::fprintf(stderr, "usage: %s [scale>0] [threads>=1]\n", argv[0]);
      std::exit(2);
    }
  }
  return a;
}

// n * scale, at least lo.
inline uint64_t scaled(double n, double scale, uint64_t lo = 1) {
  double v = n * scale;
  return v < double(lo) ? lo : uint64_t(v);
}

inline double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

inline void report(const char* name, uint64_t ops, double secs) {
  std::printf("info: %s\n", name);
  std::printf("result: %llu ops in %.6f s\n", (unsigned long long)ops, secs);
  std::fflush(stdout);
}

[[noreturn]] inline void die(const char* what, const void* p) {
  std::fprintf(stderr, "bench: FAILED: %s (object %p)\n", what, p);
  std::fflush(stderr);
  std::abort();
}

inline void check_alloc(const void* p, const char* what) {
  if (p == nullptr) die(what, p);
}

// xorshift64*: tiny, deterministic, thread-private PRNG.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {
    if (s == 0) s = 1;
  }
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  // uniform in [0, n)
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }  // [lo, hi]
};

// Sizes 16 B .. 8 KiB skewed small (roughly what a server's heap sees):
// 80% 16..128, 15% 129..1024, 4% 1025..4096, 1% 4097..8192.  Mean ~300 B.
inline size_t skewed_size(Rng& r) {
  uint64_t x = r.below(100);
  if (x < 80) return r.range(16, 128);
  if (x < 95) return r.range(129, 1024);
  if (x < 99) return r.range(1025, 4096);
  return r.range(4097, 8192);
}

// Log-uniform size in [lo, hi].
inline size_t log_uniform(Rng& r, size_t lo, size_t hi) {
  int lo_b = 63 - __builtin_clzll(lo), hi_b = 63 - __builtin_clzll(hi);
  int b = lo_b + int(r.below(uint64_t(hi_b - lo_b)));
  size_t base = size_t(1) << b;
  size_t v = base + r.below(base);
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return v;
}

// Stamp: the first 8 bytes hold (address ^ size ^ key), the last byte holds a
// byte derived from the same value.  Objects >= 9 bytes only.
inline uint64_t stamp_value(const void* p, size_t n) {
  return (uint64_t(uintptr_t(p)) ^ (uint64_t(n) * 0x9E3779B97F4A7C15ull)) ^ 0xA5A5C3C35A5A3C3Cull;
}
inline void stamp(void* p, size_t n) {
  uint64_t v = stamp_value(p, n);
  std::memcpy(p, &v, 8);
  static_cast<unsigned char*>(p)[n - 1] = static_cast<unsigned char>(v >> 56);
}
inline void verify(const void* p, size_t n, const char* what) {
  uint64_t v = stamp_value(p, n), got;
  std::memcpy(&got, p, 8);
  if (got != v || static_cast<const unsigned char*>(p)[n - 1] != static_cast<unsigned char>(v >> 56))
    die(what, p);
}

// Keep the compiler from eliding a malloc/free pair or a store.
inline void escape(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

// Write one byte per 4 KiB page (the way real code first touches a buffer).
inline void touch_pages(void* p, size_t n, unsigned char v) {
  auto* c = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i += 4096) c[i] = v;
  c[n - 1] = v;
}
inline void verify_pages(const void* p, size_t n, unsigned char v, const char* what) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i += 4096)
    if (c[i] != v) die(what, p);
  if (c[n - 1] != v) die(what, p);
}

}  // namespace bench

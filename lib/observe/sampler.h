// Sampler: which allocations the heap profiler records.
//
// Owns: the per-thread byte countdown's policy (the field is
// ThreadCache::sample_left, which the malloc fast path decrements; see
// alloc_fast.h), a per-thread PRNG, the exponential intervals, the on/off
// generation, and the exact count of bytes allocated while sampling (for
// AMMALLOC_HEAP_PROFILE_INTERVAL).
//
// Sampling is a Poisson process over allocated bytes with mean interval
// P = AMMALLOC_PROFILE_SAMPLE: intervals are -ln(u) * P with u uniform in (0,1],
// so an allocation of n bytes is sampled with probability 1 - exp(-n/P), the
// model google-pprof's heap_v2 reader inverts (it multiplies a bucket of
// average size s by 1 / (1 - exp(-s/P))). After a sample the next interval is
// drawn fresh (memoryless). ln is computed here, without libm and without
// allocating (frexp-style split + an atanh series; relative error < 1e-7).
//
// Off costs nothing beyond the fast path's `sub` + `js`: a thread's countdown
// is INT64_MAX, which no program exhausts. Start/stop (profiler.cc) bump a
// generation and push every thread through a miss path once (bypass on/off);
// miss paths call sampler_check_generation(), so each thread re-arms at its next
// operation. A thread's first allocation (countdown 0) arms it too.
//
// Locks: none. Per-thread state is owner-only; the byte total is an atomic add
// per sample.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/attributes.h"

namespace am {

inline constexpr int64_t kNeverSample = INT64_MAX;

// Current on/off generation and whether the profiler samples.
extern constinit std::atomic<uint32_t> g_sampler_gen;

// The countdown ran out at an allocation of `size` bytes (the countdown already
// has it subtracted): re-arms and returns true if this allocation is a sample.
// False inside the profiler itself (its own allocations are never sampled).
bool sampler_take(size_t size);
// Re-arms this thread's countdown if the generation moved (miss paths).
void sampler_rearm_slow();
inline void sampler_check_generation();

// Profiler on/off: period from AMMALLOC_PROFILE_SAMPLE at each draw.
void sampler_set_active(bool on);
bool sampler_active();
int64_t sampler_period();
// Exact bytes allocated while active, up to each thread's latest sample.
uint64_t sampler_bytes_allocated();

// Guard: while set, this thread's allocations are not sampled (the profiler
// and the stack unwinder may allocate).
struct SamplerGuard {
  SamplerGuard();
  ~SamplerGuard();
  bool was_set;
};

// Exposed for tests: ln(x) for x > 0 without libm, and one interval draw.
double sampler_log(double x);
int64_t sampler_draw_interval(uint64_t* rng_state, int64_t mean);

}  // namespace am

#include "heap/thread_cache.h"

namespace am {
struct SamplerTls {
  uint64_t rng = 0;
  int64_t armed = 0;  // the value last stored in sample_left
  uint32_t gen = 0;
  bool busy = false;
};
extern constinit thread_local SamplerTls t_sampler AM_TLS_IE;

inline void sampler_check_generation() {
  if (AM_UNLIKELY(t_sampler.gen != g_sampler_gen.load(std::memory_order_relaxed))) sampler_rearm_slow();
}
}  // namespace am

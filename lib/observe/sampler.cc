// Sampling countdown policy, PRNG and intervals (see sampler.h).
#include "observe/sampler.h"

#include "core/init_state.h"
#include "core/options.h"
#include "os/os.h"

namespace am {

// Starts at 1 so that a thread's zero-initialised generation differs.
constinit std::atomic<uint32_t> g_sampler_gen{1};
constinit thread_local SamplerTls t_sampler AM_TLS_IE;

namespace {

constinit std::atomic<bool> g_active{false};
constinit std::atomic<uint64_t> g_bytes{0};

// splitmix64: one multiply-xorshift chain per draw, full period, no state
// beyond 64 bits; plenty for choosing sample points.
uint64_t next_random(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void seed(SamplerTls& t) {
  if (t.rng != 0) return;
  // Different per thread and per process: the TLS block's address, the
  // thread id and the clock.
  t.rng = reinterpret_cast<uintptr_t>(&t) ^ (static_cast<uint64_t>(os::thread_id()) << 32) ^ os::now_ns();
  if (t.rng == 0) t.rng = 1;
}

void arm(ThreadCache& tc, SamplerTls& t) {
  int64_t v = kNeverSample;
  if (g_active.load(std::memory_order_relaxed)) {
    int64_t mean = sampler_period();
    if (mean > 0) {
      seed(t);
      v = sampler_draw_interval(&t.rng, mean);
    }
  }
  tc.sample_left = v;
  t.armed = v;
}

}  // namespace

double sampler_log(double x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln x = e ln 2 + 2 atanh(s),
  // s = (m-1)/(m+1), |s| < 0.1716: five odd terms leave < 1e-9 relative error.
  if (!(x > 0)) return -1e300;
  uint64_t bits;
  __builtin_memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  if (e == -1023) return sampler_log(x * 0x1p64) - 64 * 0.69314718055994530942;  // subnormal
  bits = (bits & ~(uint64_t{0x7ff} << 52)) | (uint64_t{1023} << 52);
  double m;
  __builtin_memcpy(&m, &bits, sizeof m);
  if (m > 1.41421356237309504880) {
    m *= 0.5;
    ++e;
  }
  double s = (m - 1) / (m + 1), s2 = s * s;
  double poly = 1.0 / 9 + s2 * (1.0 / 11);
  poly = 1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * poly));
  double series = s * (1 + s2 * poly);
  return e * 0.69314718055994530942 + 2 * series;
}

int64_t sampler_draw_interval(uint64_t* rng_state, int64_t mean) {
  // u in (0, 1]: 53 random bits, +1 so that ln(u) is finite.
  double u = static_cast<double>((next_random(rng_state) >> 11) + 1) * 0x1p-53;
  double v = -sampler_log(u) * static_cast<double>(mean);
  // -ln(2^-53) = 36.7: the longest interval is 37 means; at least one byte.
  if (v < 1) return 1;
  return static_cast<int64_t>(v);
}

bool sampler_take(size_t size) {
  ThreadCache& tc = tls_cache;
  SamplerTls& t = t_sampler;
  ensure_initialized();
  uint32_t gen = g_sampler_gen.load(std::memory_order_acquire);
  if (t.gen != gen) {  // first allocation of the thread, or on/off since
    t.gen = gen;
    arm(tc, t);
    return false;
  }
  bool active = g_active.load(std::memory_order_relaxed);
  // Bytes since the countdown was armed: what it was set to, minus what is left.
  if (active)
    g_bytes.fetch_add(static_cast<uint64_t>(t.armed) - static_cast<uint64_t>(tc.sample_left),
                      std::memory_order_relaxed);
  arm(tc, t);
  (void)size;
  return active && !t.busy && t.armed != kNeverSample;
}

void sampler_rearm_slow() {
  SamplerTls& t = t_sampler;
  t.gen = g_sampler_gen.load(std::memory_order_acquire);
  arm(tls_cache, t);
}

void sampler_set_active(bool on) {
  g_active.store(on, std::memory_order_release);
  g_sampler_gen.fetch_add(1, std::memory_order_acq_rel);
}

bool sampler_active() { return g_active.load(std::memory_order_relaxed); }

int64_t sampler_period() { return option(kOptProfileSample); }

uint64_t sampler_bytes_allocated() { return g_bytes.load(std::memory_order_relaxed); }

SamplerGuard::SamplerGuard() : was_set(t_sampler.busy) { t_sampler.busy = true; }
SamplerGuard::~SamplerGuard() { t_sampler.busy = was_set; }

}  // namespace am

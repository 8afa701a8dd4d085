// memory_phases — resident memory of a heap whose contents change shape over
// time: RSS at each phase end, fragmentation and minor faults (issue 18).
//
//   usage: memory_phases PATTERN [--scale X] [--phase-s S] [--phases N] [--settle S]
//
// Patterns:
//   shift       4 threads hold a 200 MiB live set whose size mix changes every
//               phase: A = 16..512 B, B = 1..64 KiB buffers (every page
//               written), C = 600 B..4 KiB, then A, B, C again. A phase change
//               frees a random 90% of the live objects and allocates the new
//               mix up to the live-set size; for the rest of the phase (--phase-s
//               seconds) the threads keep replacing random objects by new ones
//               of the phase's mix. --phases N phases (default 4).
//   kvchurn     one thread: blocks of 256 KiB..4 MiB, 64-byte aligned
//               (posix_memalign), one write per 4 KiB page, 9 GiB of allocation
//               volume through a 2 GiB LRU budget (a quarter of the steps also
//               "use" a random live block, which makes it most recent); a phase
//               ends every 1 GiB of volume. Also counts released-then-refaulted:
//               the minor faults taken while touching new blocks once the budget
//               was first reached, x 4 KiB.
//   threads64   64 (threads256: 256) threads doing mixed small work, 16 B..8 KiB
//   threads256  skewed small; 20% of the frees are handed to another thread's
//               queue and freed there; an 18 MiB live set split among the
//               threads; 3 rounds, one phase each.
// Sizes and volumes are multiplied by --scale (default 1); --phase-s defaults
// to 3 x scale seconds and --settle to 0.5 x scale seconds.
//
// Output (stdout), one line per phase end, after the threads have stopped and
// the process slept --settle seconds (so that background release can act):
//   pattern=P phase=K live_mib=L rss_mib=R frag=F faults=N [mix=..] [refault_mib=..]
//     live_mib  sum of the requested sizes of the live blocks (what the program holds)
//     rss_mib   VmRSS (/proc/self/statm) minus its value at start, taken after the
//               program's own bookkeeping (mmap'ed, prefaulted) and threads exist
//     frag      (rss - live) / rss
//     faults    minor faults of the process (getrusage ru_minflt) during the phase
//     tiers     (under ammalloc only) free MiB in its page heap / central cache /
//               thread caches / transfer cache: where the rest of the RSS is
// and at the end:
//   pattern=P peak_rss_mib=M [refault_mib=T]
//     peak_rss_mib  ru_maxrss minus the start RSS (at least the largest rss_mib);
//     refault_mib   (kvchurn) the total.
// Lines starting with '#' are the legend. RSS is read with read(2) into a stack
// buffer and the lines are written with write(2): the measurement allocates
// nothing. Seeds are fixed; what runs in a timed phase (shift) depends on speed,
// everything else is the same sequence for every allocator. Every block is
// stamped and checked before it is freed; a mismatch exits 1.
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

#include "../common/proc_self.h"
#include "bench_common.h"

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// ------------------------------------------------------------------ output --
void out(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void out(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n >= int(sizeof buf)) n = sizeof buf - 1;
  for (int off = 0; off < n;) {
    ssize_t w = ::write(1, buf + off, size_t(n - off));
    if (w <= 0) return;
    off += int(w);
  }
}

[[noreturn]] void fail(const char* what, const void* p) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "memory_phases: FAILED: %s (block %p)\n", what, p);
  if (n > 0) (void)!::write(2, buf, size_t(n < int(sizeof buf) ? n : int(sizeof buf) - 1));
  std::_Exit(1);
}

// --------------------------------------------------------------- checking --
// First 8 bytes: a value derived from the address and size; last byte: its top
// byte; for page-touched blocks, a tag byte at every 4 KiB and in the middle.
uint64_t stamp_of(const void* p, size_t n) {
  return (uint64_t(uintptr_t(p)) ^ (uint64_t(n) * 0x9E3779B97F4A7C15ull)) ^ 0x5AC3A5C3C35A3CA5ull;
}
void stamp(void* p, size_t n) {
  uint64_t v = stamp_of(p, n);
  std::memcpy(p, &v, 8);
  static_cast<unsigned char*>(p)[n - 1] = static_cast<unsigned char>(v >> 56);
}
void check(const void* p, size_t n) {
  uint64_t v = stamp_of(p, n), got;
  std::memcpy(&got, p, 8);
  if (got != v || static_cast<const unsigned char*>(p)[n - 1] != static_cast<unsigned char>(v >> 56))
    fail("block lost its contents", p);
}
unsigned char tag_of(const void* p) { return static_cast<unsigned char>((uintptr_t(p) >> 6) * 131u) | 1u; }
// One write per 4 KiB page (bytes 8.. so the stamp stays), then the stamp.
void touch(void* p, size_t n) {
  auto* c = static_cast<unsigned char*>(p);
  unsigned char t = tag_of(p);
  for (size_t i = 4096; i < n - 1; i += 4096) c[i] = t;
  stamp(p, n);
}
// The stamp and the tag of the first, the middle and the last touched page.
void check_touched(const void* p, size_t n) {
  check(p, n);
  const auto* c = static_cast<const unsigned char*>(p);
  size_t pages = (n - 2) / 4096;  // tags at 4096 * k, k = 1..pages
  unsigned char t = tag_of(p);
  if (pages > 0 && (c[4096] != t || c[4096 * pages] != t || c[4096 * ((pages + 1) / 2)] != t))
    fail("page of a block lost its contents", p);
}

void* xmalloc(size_t n) {
  void* p = std::malloc(n);
  if (p == nullptr) fail("malloc returned NULL", nullptr);
  return p;
}

// ------------------------------------------------------------- bookkeeping --
// The program's own arrays live in prefaulted anonymous mappings created before
// the baseline: they are neither the heap under test nor part of rss_mib.
template <class T>
T* map_array(size_t n) {
  void* p = ::mmap(nullptr, n * sizeof(T) + 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) fail("mmap of the bookkeeping failed", nullptr);
  return static_cast<T*>(p);
}

long minflt_self() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}
long minflt_thread() {
  rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}
double maxrss_mib() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

void sleep_s(double s) {
  if (s <= 0) return;
  timespec ts;
  ts.tv_sec = time_t(s);
  ts.tv_nsec = long((s - double(ts.tv_sec)) * 1e9);
  while (nanosleep(&ts, &ts) != 0) {
  }
}

struct Options {
  const char* pattern = nullptr;
  double scale = 1;
  double phase_s = -1;
  int phases = 4;
  double settle = -1;
};

// ammalloc's property reader when it is the preloaded allocator (found with
// dlsym before the baseline is read: dlsym may allocate), else nullptr.
using PropertyFn = int (*)(const char*, size_t*);

// Where ammalloc's free memory is, in MiB, for the phase-end line:
// " tiers=pageheap_free/central_free/thread_cache/transfer" (empty without it).
void format_tiers(PropertyFn prop, char* buf, size_t len) {
  buf[0] = 0;
  if (prop == nullptr) return;
  const char* names[] = {"ammalloc.pageheap_free_bytes", "ammalloc.central_cache_free_bytes",
                         "ammalloc.thread_cache_free_bytes", "ammalloc.transfer_cache_free_bytes"};
  double v[4] = {};
  for (int i = 0; i < 4; ++i) {
    size_t x = 0;
    if (prop(names[i], &x)) v[i] = double(x) / kMiB;
  }
  snprintf(buf, len, " tiers=%.1f/%.1f/%.1f/%.1f", v[0], v[1], v[2], v[3]);
}

// Phase-end reporting, shared by the patterns.
struct Meter {
  const char* pattern;
  double base_rss = 0, max_seen = 0;
  long faults0 = 0;
  int phase = 0;
  PropertyFn prop = nullptr;
  void start() {
    prop = reinterpret_cast<PropertyFn>(dlsym(RTLD_DEFAULT, "am_get_numeric_property"));
    base_rss = proc_rss_mib();
    faults0 = minflt_self();
  }
  // extra: " mix=A" etc., already formatted (a stack buffer of the caller).
  void phase_end(double settle, uint64_t live_bytes, const char* extra) {
    sleep_s(settle);
    double rss = proc_rss_mib() - base_rss;
    if (rss > max_seen) max_seen = rss;
    long f = minflt_self();
    double live = double(live_bytes) / kMiB;
    double frag = rss > 0 ? (rss - live) / rss : 0;
    char tiers[96];
    format_tiers(prop, tiers, sizeof tiers);
    out("pattern=%s phase=%d live_mib=%.1f rss_mib=%.1f frag=%.3f faults=%ld%s%s\n", pattern, ++phase, live,
        rss, frag, f - faults0, extra, tiers);
    faults0 = minflt_self();
  }
  // The high-water mark (ru_maxrss) minus the start RSS (or the largest
  // phase-end value, if the kernel's lazily summed counters lag behind statm).
  double peak() const {
    double m = maxrss_mib() - base_rss;
    return m > max_seen ? m : max_seen;
  }
};

void legend() {
  out("# live_mib = requested bytes of live blocks; rss_mib = VmRSS minus the start value;"
      " frag = (rss-live)/rss; faults = minor faults in the phase\n");
}

// ------------------------------------------------------------------ shift --
// Mix k (0 = A, 1 = B, 2 = C): sizes and whether every page is written.
size_t shift_size(bench::Rng& r, int mix) {
  switch (mix) {
    case 0: return r.range(16, 512);
    case 1: return r.range(1024, 64 * 1024);
    default: return r.range(600, 4096);
  }
}
const char* const kMixName[3] = {"A", "B", "C"};

struct Obj {
  void* p;
  uint32_t n;
};

struct alignas(64) ShiftWorker {
  Obj* objs = nullptr;
  size_t cap = 0, count = 0;
  uint64_t live = 0, target = 0;
  uint64_t ops = 0;
  bench::Rng rng{1};

  void free_at(size_t i) {
    Obj o = objs[i];
    if (o.n >= 4096) check_touched(o.p, o.n); else check(o.p, o.n);
    std::free(o.p);
    live -= o.n;
    objs[i] = objs[--count];
  }
  void add(int mix) {
    size_t n = shift_size(rng, mix);
    void* p = xmalloc(n);
    if (n >= 4096) touch(p, n); else stamp(p, n);
    objs[count++] = {p, uint32_t(n)};
    live += n;
    ops++;
  }
  void fill(int mix) {
    while (live < target && count < cap) add(mix);
  }
  // A phase change: a random 90% freed (order kept deterministic), then the new mix.
  void thin() {
    size_t i = 0;
    while (i < count) {
      if (rng.below(10) != 0) free_at(i);  // swaps the last one in: look at i again
      else i++;
    }
  }
  void churn(int mix, const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
      for (int k = 0; k < 64 && count > 0; k++) {
        free_at(rng.below(count));
        fill(mix);
      }
    }
  }
  void release_all() {
    while (count > 0) free_at(count - 1);
  }
};

int run_shift(const Options& o) {
  const int kThreads = 4;
  const uint64_t total = bench::scaled(200.0 * kMiB, o.scale, 1 << 20);
  std::vector<ShiftWorker> w(kThreads);
  for (int t = 0; t < kThreads; t++) {
    w[t].target = total / kThreads;
    w[t].cap = w[t].target / 64 + 1024;  // mix A averages 264 B
    w[t].objs = map_array<Obj>(w[t].cap);
    w[t].rng = bench::Rng(1000 + t);
  }
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, nullptr, kThreads + 1);
  std::atomic<bool> stop{false};
  std::atomic<int> mix{0};
  std::atomic<bool> quit{false};
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; t++)
    th.emplace_back([&, t] {
      ShiftWorker& me = w[t];
      pthread_barrier_wait(&bar);  // the baseline is taken
      bool first = true;
      for (;;) {
        pthread_barrier_wait(&bar);  // a phase starts
        if (quit.load()) break;
        int m = mix.load();
        if (!first) me.thin();
        first = false;
        me.fill(m);
        me.churn(m, stop);
        pthread_barrier_wait(&bar);  // the phase ends
      }
      me.release_all();
    });

  Meter meter{"shift"};
  meter.start();
  legend();
  pthread_barrier_wait(&bar);
  for (int ph = 0; ph < o.phases; ph++) {
    int m = ph % 3;
    mix.store(m);
    stop.store(false);
    pthread_barrier_wait(&bar);
    sleep_s(o.phase_s);
    stop.store(true);
    pthread_barrier_wait(&bar);
    uint64_t live = 0, ops = 0;
    for (auto& x : w) live += x.live, ops += x.ops;
    char extra[64];
    std::snprintf(extra, sizeof extra, " mix=%s ops=%llu", kMixName[m], (unsigned long long)ops);
    meter.phase_end(o.settle, live, extra);
  }
  quit.store(true);
  pthread_barrier_wait(&bar);
  for (auto& t : th) t.join();
  out("pattern=shift peak_rss_mib=%.1f\n", meter.peak());
  return 0;
}

// ---------------------------------------------------------------- kvchurn --
struct Block {
  void* p;
  size_t n;
};

int run_kvchurn(const Options& o) {
  const uint64_t per_phase = bench::scaled(1.0 * 1024 * kMiB, o.scale, 8 << 20);
  const uint64_t volume = 9 * per_phase;
  const uint64_t budget = 2 * per_phase;
  const size_t cap = budget / (256 * 1024) + 2;
  Block* lru = map_array<Block>(cap);  // [0] least recently used
  size_t count = 0;
  uint64_t live = 0, done = 0, next_end = per_phase;
  bool filled = false;
  long refaults = 0, phase_refaults = 0;
  bench::Rng rng(77);

  auto drop_front = [&] {
    Block b = lru[0];
    check_touched(b.p, b.n);
    std::free(b.p);
    live -= b.n;
    std::memmove(lru, lru + 1, (count - 1) * sizeof(Block));
    count--;
  };

  Meter meter{"kvchurn"};
  meter.start();
  legend();
  out("# refault_mib = minor faults while touching new blocks after the budget was first reached,"
      " x 4 KiB: an upper estimate (pages new to the process count too; a huge-page fault maps more)\n");
  while (done < volume) {
    size_t n = (bench::log_uniform(rng, 256 * 1024, 4 * 1024 * 1024) + 63) & ~size_t(63);
    if (rng.below(4) == 0 && count > 1) {  // use a block: it becomes the most recent
      size_t i = rng.below(count - 1);
      Block b = lru[i];
      check_touched(b.p, b.n);
      std::memmove(lru + i, lru + i + 1, (count - 1 - i) * sizeof(Block));
      lru[count - 1] = b;
    }
    while (count > 0 && live + n > budget) {
      drop_front();
      filled = true;
    }
    void* p = nullptr;
    if (posix_memalign(&p, 64, n) != 0 || p == nullptr) fail("posix_memalign failed", nullptr);
    if ((uintptr_t(p) & 63) != 0) fail("posix_memalign: not 64-byte aligned", p);
    long f0 = filled ? minflt_thread() : 0;
    touch(p, n);
    if (filled) {
      long d = minflt_thread() - f0;
      refaults += d;
      phase_refaults += d;
    }
    lru[count++] = {p, n};
    live += n;
    done += n;
    if (done >= next_end || done >= volume) {
      next_end += per_phase;
      char extra[64];
      std::snprintf(extra, sizeof extra, " refault_mib=%.1f", double(phase_refaults) * 4096 / kMiB);
      phase_refaults = 0;
      meter.phase_end(o.settle, live, extra);
    }
  }
  double peak = meter.peak();
  while (count > 0) drop_front();
  out("pattern=kvchurn peak_rss_mib=%.1f refault_mib=%.1f\n", peak, double(refaults) * 4096 / kMiB);
  return 0;
}

// ---------------------------------------------------------------- threads --
// A hand-off queue per thread: others push blocks to it, the owner frees them.
struct alignas(64) Queue {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  Obj* items = nullptr;
  size_t cap = 0, n = 0;
};

int run_threads(const Options& o, int T, const char* name) {
  const int kRounds = 3;
  const uint64_t total_live = bench::scaled(18.0 * kMiB, o.scale, 1 << 20);
  const uint64_t per_thread = total_live / T + 1;
  const uint64_t ops_round = bench::scaled(3e6, o.scale, 20000) / T + 1;
  const size_t slot_cap = per_thread / 16 + 16;
  std::vector<Queue> q(T);
  std::vector<Obj*> slots(T);
  std::vector<size_t> nslots(T, 0);
  // Per-thread live byte counters: the owner adds, whoever frees subtracts.
  std::vector<std::atomic<int64_t>> live(T);
  for (int t = 0; t < T; t++) {
    q[t].cap = 1024;
    q[t].items = map_array<Obj>(q[t].cap);
    slots[t] = map_array<Obj>(slot_cap);
    live[t].store(0);
  }
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, nullptr, T + 1);
  pthread_barrier_t workers;
  pthread_barrier_init(&workers, nullptr, T);

  auto free_obj = [&](Obj ob, int owner) {
    check(ob.p, ob.n);
    std::free(ob.p);
    live[owner].fetch_sub(ob.n, std::memory_order_relaxed);
  };
  // A queued item carries its owner (whose live counter it is in) in the top
  // bits of its size field: sizes are at most 8 KiB, threads at most 256.
  auto drain = [&](int me) {
    Obj local[64];
    for (;;) {
      size_t k = 0;
      pthread_mutex_lock(&q[me].mu);
      while (q[me].n > 0 && k < 64) local[k++] = q[me].items[--q[me].n];
      pthread_mutex_unlock(&q[me].mu);
      if (k == 0) return;
      for (size_t i = 0; i < k; i++) free_obj({local[i].p, local[i].n & 0xFFFFu}, int(local[i].n >> 16));
    }
  };

  std::vector<std::thread> th;
  for (int t = 0; t < T; t++)
    th.emplace_back([&, t] {
      bench::Rng rng(5000 + t);
      Obj* s = slots[t];
      size_t& ns = nslots[t];
      int64_t mine = 0;
      auto alloc = [&] {
        size_t n = bench::skewed_size(rng);
        void* p = xmalloc(n);
        stamp(p, n);
        live[t].fetch_add(int64_t(n), std::memory_order_relaxed);
        mine += int64_t(n);
        return Obj{p, uint32_t(n)};
      };
      pthread_barrier_wait(&bar);  // the baseline is taken
      for (int round = 0; round < kRounds; round++) {
        pthread_barrier_wait(&bar);  // the round starts
        if (round == 0)
          while (uint64_t(mine) < per_thread && ns < slot_cap) s[ns++] = alloc();
        for (uint64_t i = 0; i < ops_round; i++) {
          size_t k = rng.below(ns);
          Obj old = s[k];
          if (rng.below(5) == 0 && T > 1) {  // 20%: freed by another thread
            int to = int(rng.below(uint64_t(T - 1)));
            if (to >= t) to++;
            bool queued = false;
            pthread_mutex_lock(&q[to].mu);
            if (q[to].n < q[to].cap) {
              q[to].items[q[to].n++] = {old.p, old.n | (uint32_t(t) << 16)};
              queued = true;
            }
            pthread_mutex_unlock(&q[to].mu);
            if (!queued) free_obj(old, t);
          } else {
            free_obj(old, t);
          }
          mine -= int64_t(old.n);
          s[k] = alloc();
          if ((i & 31) == 31) drain(t);
        }
        pthread_barrier_wait(&workers);  // nobody pushes any more
        drain(t);
        pthread_barrier_wait(&bar);  // the round ends
      }
      pthread_barrier_wait(&bar);  // the last report is printed
      for (size_t k = 0; k < ns; k++) free_obj(s[k], t);
      ns = 0;
    });

  Meter meter{name};
  meter.start();
  legend();
  pthread_barrier_wait(&bar);
  for (int round = 0; round < kRounds; round++) {
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    int64_t sum = 0;
    for (auto& l : live) sum += l.load();
    char extra[64];
    std::snprintf(extra, sizeof extra, " threads=%d", T);
    meter.phase_end(o.settle, uint64_t(sum), extra);
  }
  double peak = meter.peak();
  pthread_barrier_wait(&bar);
  for (auto& t : th) t.join();
  out("pattern=%s peak_rss_mib=%.1f\n", name, peak);
  return 0;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: memory_phases shift|kvchurn|threads64|threads256 [--scale X] [--phase-s S]"
               " [--phases N] [--settle S]\n");
  std::exit(2);
}

double num_arg(int argc, char** argv, int& i, double lo, double hi) {
  if (i + 1 >= argc) usage();
  char* end = nullptr;
  double v = std::strtod(argv[++i], &end);
  if (end == argv[i] || *end != 0 || !(v >= lo) || !(v <= hi)) usage();
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) usage();
  o.pattern = argv[1];
  for (int i = 2; i < argc; i++) {
    if (!std::strcmp(argv[i], "--scale")) o.scale = num_arg(argc, argv, i, 1e-6, 1000);
    else if (!std::strcmp(argv[i], "--phase-s")) o.phase_s = num_arg(argc, argv, i, 0, 3600);
    else if (!std::strcmp(argv[i], "--phases")) o.phases = int(num_arg(argc, argv, i, 1, 1000));
    else if (!std::strcmp(argv[i], "--settle")) o.settle = num_arg(argc, argv, i, 0, 3600);
    else usage();
  }
  if (o.phase_s < 0) o.phase_s = 3.0 * o.scale;
  if (o.settle < 0) o.settle = 0.5 * o.scale;
  if (!std::strcmp(o.pattern, "shift")) return run_shift(o);
  if (!std::strcmp(o.pattern, "kvchurn")) return run_kvchurn(o);
  if (!std::strcmp(o.pattern, "threads64")) return run_threads(o, 64, "threads64");
  if (!std::strcmp(o.pattern, "threads256")) return run_threads(o, 256, "threads256");
  usage();
}

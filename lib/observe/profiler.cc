// Heap profiler: stack table, buckets, dumps (see profiler.h).
#include "observe/profiler.h"

#include <errno.h>
#include <stdlib.h>

#include <atomic>

#include "ammalloc/ammalloc.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "core/init_state.h"
#include "core/meta_arena.h"
#include "core/options.h"
#include "os/files.h"
#include "os/os.h"
#include "observe/profile_writer.h"
#include "observe/sampler.h"
#include "observe/stacktrace.h"
#include "heap/thread_cache.h"

namespace am {
namespace {

// 16K heads each: chains stay short up to ~50K distinct stacks or buckets.
constexpr size_t kHeads = size_t{1} << 14;
constexpr size_t kPrefixMax = 1024;

struct Bucket {
  Bucket* next;      // hash chain
  Bucket* all_next;  // every bucket, for dumps
  const StackTrace* stack;
  size_t size;
  uint64_t allocs;
  uint64_t frees;
  // Bytes one sample of this bucket stands for: size / (1 - exp(-size/period)),
  // google-pprof's heap_v2 unsampling, with the period in force when the bucket
  // was made (added and subtracted with the same weight).
  uint64_t weight;
};

struct ProfilerState {
  SpinLock lock{LockRank::kProfile};
  StackTrace** stacks = nullptr;
  Bucket** buckets = nullptr;
  Bucket* all = nullptr;
  int seq = 0;
  bool running = false;
  // The estimated bytes in use (sum of live samples' weights) and its value
  // at the last AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL dump (a high-water mark).
  uint64_t inuse_estimate = 0;
  uint64_t inuse_dumped = 0;
  uint64_t next_time_dump_ns = 0;  // AMMALLOC_HEAP_PROFILE_TIME_INTERVAL (0: not armed)
  char prefix[kPrefixMax] = {};
  char chunk[64 * 1024] = {};  // the file writer's buffer (under the lock)
};

constinit ProfilerState g_prof;
constinit std::atomic<uint64_t> g_next_dump_at{0};
constinit std::atomic<bool> g_atexit_registered{false};

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

uint64_t stack_hash(void* const* pcs, int depth) {
  uint64_t h = static_cast<uint64_t>(depth);
  for (int i = 0; i < depth; ++i) h = mix(h, reinterpret_cast<uintptr_t>(pcs[i]));
  return h ^ (h >> 29);
}

void ensure_tables_locked() {
  if (g_prof.stacks != nullptr) return;
  g_prof.stacks = static_cast<StackTrace**>(meta_alloc_pages(kHeads * sizeof(StackTrace*)));
  g_prof.buckets = static_cast<Bucket**>(meta_alloc_pages(kHeads * sizeof(Bucket*)));
}

const StackTrace* intern_locked(void* const* pcs, int depth) {
  ensure_tables_locked();
  uint64_t h = stack_hash(pcs, depth);
  StackTrace*& head = g_prof.stacks[h & (kHeads - 1)];
  for (StackTrace* s = head; s; s = s->next) {
    if (s->hash != h || s->depth != static_cast<uint32_t>(depth)) continue;
    bool same = true;
    for (int i = 0; i < depth && same; ++i) same = s->pcs()[i] == pcs[i];
    if (same) return s;
  }
  size_t bytes = sizeof(StackTrace) + sizeof(void*) * static_cast<size_t>(depth);
  auto* s = static_cast<StackTrace*>(meta_alloc(bytes));
  s->hash = h;
  s->depth = static_cast<uint32_t>(depth);
  auto** dst = reinterpret_cast<void**>(s + 1);
  for (int i = 0; i < depth; ++i) dst[i] = pcs[i];
  s->next = head;
  head = s;
  return s;
}

// e^-x for x >= 0 without libm: halve x until small, a Taylor series, then
// square back (relative error ~1e-12; plenty for a trigger).
double exp_neg(double x) {
  if (x > 700) return 0;
  int halvings = 0;
  while (x > 0.125) x *= 0.5, ++halvings;
  double term = 1, sum = 1;
  for (int k = 1; k < 12; ++k) term *= -x / k, sum += term;
  while (halvings-- > 0) sum *= sum;
  return sum;
}

uint64_t sample_weight(size_t size) {
  int64_t period = sampler_period();
  if (period <= 0) return size;
  double x = static_cast<double>(size) / static_cast<double>(period);
  double p = 1 - exp_neg(x);  // the chance that an object of `size` is sampled
  return p <= 0 ? size : static_cast<uint64_t>(static_cast<double>(size) / p);
}

Bucket* bucket_locked(const StackTrace* st, size_t size) {
  uint64_t h = mix(st->hash, size);
  Bucket*& head = g_prof.buckets[h & (kHeads - 1)];
  for (Bucket* b = head; b; b = b->next)
    if (b->stack == st && b->size == size) return b;
  auto* b = static_cast<Bucket*>(meta_alloc(sizeof(Bucket)));
  b->stack = st;
  b->size = size;
  b->allocs = b->frees = 0;
  b->weight = sample_weight(size);
  b->next = head;
  head = b;
  b->all_next = g_prof.all;
  g_prof.all = b;
  return b;
}

// Header and one line per bucket with anything to show. reason (may be null):
// a comment line after the header names what triggered the profile; both
// google-pprof (lines that are not samples are skipped) and Go's pprof ('#'
// lines are comments) read past it.
void write_buckets_locked(ProfileSink& out, const char* reason = nullptr) {
  uint64_t n1 = 0, b1 = 0, n2 = 0, b2 = 0;
  for (Bucket* b = g_prof.all; b; b = b->all_next) {
    n1 += b->allocs - b->frees;
    b1 += (b->allocs - b->frees) * b->size;
    n2 += b->allocs;
    b2 += b->allocs * b->size;
  }
  char type[48];
  TextBuffer t(type, sizeof type);
  t.str("heap_v2/").u64(static_cast<uint64_t>(sampler_period()));
  profile_header(out, n1, b1, n2, b2, type);
  if (reason != nullptr) {
    // The executable: which binary google-pprof needs for this process's
    // symbols (ammalloc-run reads it; a wrapper's child runs another program).
    char exe[512];
    if (os::self_exe_path(exe, sizeof exe) < 0) exe[0] = '\0';
    char c[800];
    TextBuffer t(c, sizeof c);
    t.str("# ammalloc ").str(AMMALLOC_VERSION).str(" heap profile; trigger: ").str(reason);
    t.str("; estimated bytes in use: ").u64(g_prof.inuse_estimate).str("; exe: ").str(exe).ch('\n');
    out.put(t.data(), t.held());
  }
  for (Bucket* b = g_prof.all; b; b = b->all_next) {
    uint64_t live = b->allocs - b->frees;
    profile_line(out, live, live * b->size, b->allocs, b->allocs * b->size, b->stack->pcs(),
                 static_cast<int>(b->stack->depth));
  }
}

int dump_locked(const char* reason) {
  if (!g_prof.running) return -1;
  int seq = ++g_prof.seq;
  char name[kPrefixMax + 64];
  if (!profile_file_name(name, sizeof name, g_prof.prefix, os::process_id(), seq, nullptr)) return -1;
  int fd = os::open_write(name);
  char msg[kPrefixMax + 128];
  TextBuffer m(msg, sizeof msg);
  if (fd < 0) {
    m.str("cannot write heap profile ").str(name);
    log_warning(msg);
    return -1;
  }
  ProfileSink out(fd, g_prof.chunk, sizeof g_prof.chunk);
  write_buckets_locked(out, reason);
  profile_maps(out);
  out.flush();
  os::close_fd(fd);
  m.str("ammalloc: heap profile ").str(name).str(" (").str(reason).str(")\n");
  os::write_all(2, m.data(), m.held());
  return seq;
}

void maybe_interval_dump() {
  int64_t interval = option(kOptHeapProfileInterval);
  if (interval <= 0) return;
  uint64_t now = sampler_bytes_allocated();
  uint64_t at = g_next_dump_at.load(std::memory_order_relaxed);
  if (now < at) return;
  // One thread wins the crossing; the next one is an interval after now.
  uint64_t next = now + static_cast<uint64_t>(interval);
  if (!g_next_dump_at.compare_exchange_strong(at, next, std::memory_order_relaxed)) return;
  LockGuard g(g_prof.lock);
  dump_locked("interval");
}

// A new in-use peak AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL above the last such
// dump, or AMMALLOC_HEAP_PROFILE_TIME_INTERVAL seconds since the last timed
// one. Checked at sampled allocations (the only time the estimate grows; a
// program that allocates nothing has no new profile to show). Lock held.
void maybe_inuse_or_time_dump_locked() {
  int64_t step = option(kOptHeapProfileInuseInterval);
  if (step > 0 && g_prof.inuse_estimate >= g_prof.inuse_dumped + static_cast<uint64_t>(step)) {
    g_prof.inuse_dumped = g_prof.inuse_estimate;
    dump_locked("inuse");
  }
  int64_t secs = option(kOptHeapProfileTimeInterval);
  if (secs > 0) {
    uint64_t now = os::now_ns(), every = static_cast<uint64_t>(secs) * 1000000000ull;
    if (g_prof.next_time_dump_ns == 0) {
      g_prof.next_time_dump_ns = now + every;
    } else if (now >= g_prof.next_time_dump_ns) {
      g_prof.next_time_dump_ns = now + every;
      dump_locked("time");
    }
  }
}

void at_exit() {
  if (!profiler_running()) return;
  LockGuard g(g_prof.lock);
  dump_locked("exit");
}

void set_prefix_locked(const char* prefix) {
  if (prefix == nullptr || *prefix == '\0') {
    if (g_prof.prefix[0] != '\0') return;
    prefix = "ammalloc";
  }
  size_t i = 0;
  for (; prefix[i] && i + 1 < kPrefixMax; ++i) g_prof.prefix[i] = prefix[i];
  g_prof.prefix[i] = '\0';
}

// Called with no lock held (atexit may allocate).
void start(const char* prefix) {
  {
    LockGuard g(g_prof.lock);
    set_prefix_locked(prefix);
    __atomic_store_n(&g_prof.running, true, __ATOMIC_RELAXED);  // also read without the lock
  }
  int64_t interval = option(kOptHeapProfileInterval);
  g_next_dump_at.store(sampler_bytes_allocated() + static_cast<uint64_t>(interval > 0 ? interval : 0),
                       std::memory_order_relaxed);
  if (!g_atexit_registered.exchange(true)) atexit(at_exit);
  sampler_set_active(true);
}

}  // namespace

void profiler_init() {
  stacktrace_init();
  const char* prefix = option_string(kOptHeapProfile);
  if (prefix == nullptr || *prefix == '\0') return;
  if (sampler_period() <= 0) {
    log_warning("AMMALLOC_HEAP_PROFILE is set but AMMALLOC_PROFILE_SAMPLE=0: no heap profile");
    return;
  }
  start(prefix);
}

void profiler_record_alloc(Span* s, size_t size) {
  void* pcs[kMaxStackDepth];
  int depth = stacktrace_capture(pcs, stacktrace_depth());
  Bucket* b;
  {
    LockGuard g(g_prof.lock);
    b = bucket_locked(intern_locked(pcs, depth), size);
    ++b->allocs;
    g_prof.inuse_estimate += b->weight;
    if (g_prof.running) maybe_inuse_or_time_dump_locked();
  }
  s->profile = b;
  s->sampled = true;
  maybe_interval_dump();
}

void profiler_on_memory_limit() {
  static constinit std::atomic<uint64_t> g_last_ns{0};
  if (!profiler_running()) return;
  const uint64_t now = os::now_ns();
  uint64_t last = g_last_ns.load(std::memory_order_relaxed);
  if (last != 0 && now - last < 1'000'000'000) return;
  if (!g_last_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;  // another thread dumps
  profiler_dump("memory-limit");
}

void profiler_record_free(Span* s) {
  auto* b = static_cast<Bucket*>(s->profile);
  {
    LockGuard g(g_prof.lock);
    ++b->frees;
    g_prof.inuse_estimate -= b->weight < g_prof.inuse_estimate ? b->weight : g_prof.inuse_estimate;
  }
  s->sampled = false;
  s->profile = nullptr;
}

const StackTrace* profiler_intern_stack(void* const* pcs, int depth) {
  LockGuard g(g_prof.lock);
  return intern_locked(pcs, depth);
}

void profiler_lock_for_fork() { g_prof.lock.lock_unchecked(); }

void profiler_unlock_after_fork(bool child) {
  child ? g_prof.lock.reset_in_child() : g_prof.lock.unlock_unchecked();
}

bool profiler_running() { return __atomic_load_n(&g_prof.running, __ATOMIC_RELAXED); }

int profiler_dump(const char* reason) {
  LockGuard g(g_prof.lock);
  return dump_locked(reason);
}

bool profiler_dump_from_signal(const char* reason) {
  if (t_locks_held != 0) return false;
  // No allocator lock is held by this thread, so waiting for the profiler's
  // lock (held by another thread for a bounded time) cannot deadlock.
  LockGuard g(g_prof.lock);
  dump_locked(reason);
  return true;
}

uint64_t profiler_inuse_estimate() {
  LockGuard g(g_prof.lock);
  return g_prof.inuse_estimate;
}

}  // namespace am

using namespace am;

extern "C" {

AM_EXPORT int am_heap_profile_start(const char* prefix) {
  ensure_initialized();
  if (sampler_period() <= 0) return EINVAL;
  start(prefix);
  // Every thread's next operation takes a miss path, where its countdown is
  // re-armed for the new generation (sampler.h).
  thread_cache_set_bypass(true);
  thread_cache_set_bypass(false);
  return 0;
}

AM_EXPORT void am_heap_profile_stop(void) {
  {
    LockGuard g(g_prof.lock);
    __atomic_store_n(&g_prof.running, false, __ATOMIC_RELAXED);
  }
  sampler_set_active(false);
}

AM_EXPORT int am_heap_profile_dump(void) { return profiler_dump("request"); }

AM_EXPORT size_t am_heap_profile_text(char* buf, size_t len, int with_maps) {
  ProfileSink out(buf, len);
  LockGuard g(g_prof.lock);
  write_buckets_locked(out);
  if (with_maps) profile_maps(out);
  return out.needed();
}

}  // extern "C"

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

// 16K heads each: chains stay short up to ~50K distinct stacks.
constexpr size_t kHeads = size_t{1} << 14;
constexpr size_t kPrefixMax = 1024;

// One per distinct stack that allocated a sample: raw sample counts and
// requested bytes (google-pprof unsamples them, profile_writer.h). Never freed:
// a bucket whose objects are all gone still holds its allocation totals (the
// --alloc_space view), and its stack is never freed either, so there are at
// most as many buckets as distinct stacks. 56 bytes (64 in the arena).
struct Bucket {
  Bucket* next;      // hash chain
  Bucket* all_next;  // every bucket, newest first, for dumps
  const StackTrace* stack;
  uint64_t live;         // sampled objects in use
  uint64_t live_bytes;   // their requested bytes
  uint64_t allocs;       // every sampled allocation
  uint64_t alloc_bytes;  // and its requested bytes
};

// A bucket as a dump writes it, copied under the lock (stacks are immutable).
struct Row {
  const StackTrace* stack;
  uint64_t live, live_bytes, allocs, alloc_bytes;
};

struct ProfilerState {
  SpinLock lock{LockRank::kProfile};
  StackTrace** stacks = nullptr;
  Bucket** buckets = nullptr;
  Bucket* all = nullptr;
  size_t nbuckets = 0;
  int seq = 0;
  bool running = false;
  // Samples not recorded because metadata memory ran out (or the span could
  // not say the object's size); the object is then an ordinary large block.
  uint64_t dropped = 0;
  // The estimated bytes in use (sum of live samples' weights) and its value
  // at the last AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL dump (a high-water mark).
  uint64_t inuse_estimate = 0;
  uint64_t inuse_dumped = 0;
  uint64_t next_time_dump_ns = 0;  // AMMALLOC_HEAP_PROFILE_TIME_INTERVAL (0: not armed)
  char prefix[kPrefixMax] = {};
};

// One dump at a time (LockRank::kProfileDump, below kProfile): the snapshot
// rows (mapped from the OS as needed and kept for the next dump) and the
// file writer's chunk. Held across the file I/O, which the profiler's lock
// never is.
struct DumpState {
  SpinLock lock{LockRank::kProfileDump};
  Row* rows = nullptr;
  size_t cap = 0;  // rows that fit
  char chunk[64 * 1024] = {};
};

constinit ProfilerState g_prof;
constinit DumpState g_dump;
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

// The head arrays, on first use; either may still be missing afterwards (no
// metadata memory): callers check.
void ensure_tables_locked() {
  if (g_prof.stacks == nullptr)
    g_prof.stacks = static_cast<StackTrace**>(meta_alloc_pages(kHeads * sizeof(StackTrace*)));
  if (g_prof.buckets == nullptr)
    g_prof.buckets = static_cast<Bucket**>(meta_alloc_pages(kHeads * sizeof(Bucket*)));
}

// The stored copy of the stack, or nullptr without metadata memory.
const StackTrace* intern_locked(void* const* pcs, int depth) {
  ensure_tables_locked();
  if (g_prof.stacks == nullptr) return nullptr;
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
  if (s == nullptr) return nullptr;
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

// Bytes one sample of `size` bytes stands for: size / (1 - exp(-size/period)),
// google-pprof's heap_v2 unsampling, with the period in force now. As
// weight - size: size * x / (e^x - 1) with x = size/period, which is at most
// the period (<= 1 GiB, the option's maximum), so it fits the span's 32 bits.
uint32_t sample_excess(size_t size) {
  int64_t period = sampler_period();
  if (period <= 0 || size == 0) return 0;
  double x = static_cast<double>(size) / static_cast<double>(period);
  double p = 1 - exp_neg(x);  // the chance that an object of `size` is sampled
  if (p <= 0) return 0;
  double excess = static_cast<double>(size) / p - static_cast<double>(size);
  if (!(excess > 0)) return 0;
  return excess >= 4294967295.0 ? UINT32_MAX : static_cast<uint32_t>(excess);
}

// The stack's bucket, or nullptr without metadata memory.
Bucket* bucket_locked(const StackTrace* st) {
  if (g_prof.buckets == nullptr) return nullptr;
  Bucket*& head = g_prof.buckets[st->hash & (kHeads - 1)];
  for (Bucket* b = head; b; b = b->next)
    if (b->stack == st) return b;
  auto* b = static_cast<Bucket*>(meta_alloc(sizeof(Bucket)));
  if (b == nullptr) return nullptr;
  b->stack = st;
  b->live = b->live_bytes = b->allocs = b->alloc_bytes = 0;
  b->next = head;
  head = b;
  b->all_next = g_prof.all;
  g_prof.all = b;
  ++g_prof.nbuckets;
  return b;
}

// ---- dumps: a snapshot under the profiler's lock, the file I/O without it ----

struct Snapshot {
  size_t rows;
  uint64_t inuse_estimate;
  uint64_t dropped;
  int64_t period;
  int seq;  // the file's sequence number (dumps to files only)
};

// Room for `need` rows (dump lock held, profiler lock not): a fresh mapping
// with half as much again to spare, the old one unmapped. False if the OS
// refuses.
bool grow_rows(size_t need) {
  size_t want = need + need / 2 + 1024;
  size_t bytes = (want * sizeof(Row) + 4095) & ~size_t{4095};
  auto* rows = static_cast<Row*>(os::map_aligned(bytes, 4096));
  if (rows == nullptr) return false;
  if (g_dump.rows != nullptr) os::unmap(g_dump.rows, g_dump.cap * sizeof(Row));
  g_dump.rows = rows;
  g_dump.cap = bytes / sizeof(Row);
  return true;
}

// Copies every bucket into g_dump.rows (dump lock held). With `name` (a file
// dump), only while the profiler runs: also takes the next sequence number and
// makes the file's name. False if there is nothing to write or no memory.
bool take_snapshot(Snapshot* snap, char* name, size_t name_len) {
  for (;;) {
    size_t need;
    {
      LockGuard g(g_prof.lock);
      if (name != nullptr && !g_prof.running) return false;
      need = g_prof.nbuckets;
      if (need <= g_dump.cap) {
        size_t n = 0;
        for (Bucket* b = g_prof.all; b; b = b->all_next)
          g_dump.rows[n++] = Row{b->stack, b->live, b->live_bytes, b->allocs, b->alloc_bytes};
        snap->rows = n;
        snap->inuse_estimate = g_prof.inuse_estimate;
        snap->dropped = g_prof.dropped;
        snap->period = sampler_period();
        snap->seq = 0;
        if (name == nullptr) return true;
        snap->seq = ++g_prof.seq;
        return profile_file_name(name, name_len, g_prof.prefix, os::process_id(), snap->seq, nullptr);
      }
    }
    if (!grow_rows(need)) {
      log_warning("heap profile not written: no memory for its snapshot");
      return false;
    }
  }
}

// Header and one line per bucket. reason (may be null): a comment line after
// the header names what triggered the profile; both google-pprof (lines that
// are not samples are skipped) and Go's pprof ('#' lines are comments) read
// past it. No lock held.
void write_rows(ProfileSink& out, const Snapshot& snap, const char* reason) {
  uint64_t n1 = 0, b1 = 0, n2 = 0, b2 = 0;
  for (size_t i = 0; i < snap.rows; ++i) {
    const Row& r = g_dump.rows[i];
    n1 += r.live;
    b1 += r.live_bytes;
    n2 += r.allocs;
    b2 += r.alloc_bytes;
  }
  char type[48];
  TextBuffer t(type, sizeof type);
  t.str("heap_v2/").u64(static_cast<uint64_t>(snap.period));
  profile_header(out, n1, b1, n2, b2, type);
  if (reason != nullptr) {
    // The executable: which binary google-pprof needs for this process's
    // symbols (ammalloc-run reads it; a wrapper's child runs another program).
    char exe[512];
    if (os::self_exe_path(exe, sizeof exe) < 0) exe[0] = '\0';
    char c[800];
    TextBuffer t(c, sizeof c);
    t.str("# ammalloc ").str(AMMALLOC_VERSION).str(" heap profile; trigger: ").str(reason);
    t.str("; estimated bytes in use: ").u64(snap.inuse_estimate);
    if (snap.dropped != 0) t.str("; dropped samples: ").u64(snap.dropped);
    t.str("; exe: ").str(exe).ch('\n');
    out.put(t.data(), t.held());
  }
  for (size_t i = 0; i < snap.rows; ++i) {
    const Row& r = g_dump.rows[i];
    profile_line(out, r.live, r.live_bytes, r.allocs, r.alloc_bytes, r.stack->pcs(), static_cast<int>(r.stack->depth));
  }
}

// A profile file now (no allocator lock held): its sequence number, or -1.
int dump(const char* reason) {
  LockGuard d(g_dump.lock);
  Snapshot snap;
  char name[kPrefixMax + 64];
  if (!take_snapshot(&snap, name, sizeof name)) return -1;
  int fd = os::open_write(name);
  char msg[kPrefixMax + 128];
  TextBuffer m(msg, sizeof msg);
  if (fd < 0) {
    m.str("cannot write heap profile ").str(name);
    log_warning(msg);
    return -1;
  }
  ProfileSink out(fd, g_dump.chunk, sizeof g_dump.chunk);
  write_rows(out, snap, reason);
  profile_maps(out);
  out.flush();
  os::close_fd(fd);
  m.str("ammalloc: heap profile ").str(name).str(" (").str(reason).str(")\n");
  os::write_all(2, m.data(), m.held());
  return snap.seq;
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
  dump("interval");
}

// A new in-use peak AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL above the last such
// dump, or AMMALLOC_HEAP_PROFILE_TIME_INTERVAL seconds since the last timed
// one. Checked at sampled allocations (the only time the estimate grows; a
// program that allocates nothing has no new profile to show). Lock held: the
// trigger is decided and re-armed here, the caller dumps after unlocking.
const char* inuse_or_time_due_locked() {
  int64_t step = option(kOptHeapProfileInuseInterval);
  if (step > 0 && g_prof.inuse_estimate >= g_prof.inuse_dumped + static_cast<uint64_t>(step)) {
    g_prof.inuse_dumped = g_prof.inuse_estimate;
    return "inuse";
  }
  int64_t secs = option(kOptHeapProfileTimeInterval);
  if (secs > 0) {
    uint64_t now = os::now_ns(), every = static_cast<uint64_t>(secs) * 1000000000ull;
    if (g_prof.next_time_dump_ns == 0) {
      g_prof.next_time_dump_ns = now + every;
    } else if (now >= g_prof.next_time_dump_ns) {
      g_prof.next_time_dump_ns = now + every;
      return "time";
    }
  }
  return nullptr;
}

void at_exit() {
  if (!profiler_running()) return;
  dump("exit");
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
  // What the free will take off again, kept in the span (span.h).
  const size_t usable = s->usable_bytes();
  const bool fits = size <= usable && usable - size <= UINT16_MAX;
  const uint32_t excess = sample_excess(size);
  Bucket* b = nullptr;
  const char* due = nullptr;
  {
    LockGuard g(g_prof.lock);
    const StackTrace* st = fits ? intern_locked(pcs, depth) : nullptr;
    b = st != nullptr ? bucket_locked(st) : nullptr;
    if (b == nullptr) {
      ++g_prof.dropped;  // no metadata memory: an ordinary large block
    } else {
      ++b->live;
      b->live_bytes += size;
      ++b->allocs;
      b->alloc_bytes += size;
      g_prof.inuse_estimate += size + excess;
      if (g_prof.running) due = inuse_or_time_due_locked();
    }
  }
  if (b != nullptr) {
    s->profile = b;
    s->sample_tail = static_cast<uint16_t>(usable - size);
    s->sample_excess = excess;
    s->sampled = true;
  }
  if (due != nullptr) dump(due);
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
  const uint64_t size = s->usable_bytes() - s->sample_tail;
  const uint64_t weight = size + s->sample_excess;
  {
    LockGuard g(g_prof.lock);
    --b->live;
    b->live_bytes -= size;
    g_prof.inuse_estimate -= weight;
  }
  s->sampled = false;
  s->profile = nullptr;
  s->sample_tail = 0;
  s->sample_excess = 0;
}

const StackTrace* profiler_intern_stack(void* const* pcs, int depth) {
  LockGuard g(g_prof.lock);
  return intern_locked(pcs, depth);
}

void profiler_lock_for_fork() {
  g_dump.lock.lock_unchecked();
  g_prof.lock.lock_unchecked();
}

void profiler_unlock_after_fork(bool child) {
  g_prof.lock.unlock_after_fork(child);
  g_dump.lock.unlock_after_fork(child);
}

bool profiler_running() { return __atomic_load_n(&g_prof.running, __ATOMIC_RELAXED); }

int profiler_dump(const char* reason) { return dump(reason); }

bool profiler_dump_from_signal(const char* reason) {
  if (t_locks_held != 0) return false;
  // No allocator lock is held by this thread, so waiting for the dump lock
  // (another thread's dump) and then the profiler's lock (held for a bounded
  // time) cannot deadlock.
  dump(reason);
  return true;
}

uint64_t profiler_dropped_samples() {
  LockGuard g(g_prof.lock);
  return g_prof.dropped;
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
  LockGuard d(g_dump.lock);
  Snapshot snap;
  if (!take_snapshot(&snap, nullptr, 0)) return 0;
  write_rows(out, snap, nullptr);
  if (with_maps) profile_maps(out);
  return out.needed();
}

}  // extern "C"

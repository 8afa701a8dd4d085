// stress.cc — multithreaded stress of the heap, run with libammalloc.so preloaded.
//
//   LD_PRELOAD=.../libammalloc.so stress [--threads N] [--seconds S | --minutes M] [--seed X] [--gentle]
//
// N worker threads (default 4) run for S seconds (default 20). Each worker
// allocates with every API of the family (malloc, calloc, realloc, memalign,
// posix_memalign, aligned_alloc, valloc, operator new / new[] / aligned new),
// 16 B .. 4 MiB, and frees with the matching call (free, free_sized,
// free_aligned_sized, sized and aligned delete). Every object carries a header
// (size, API, a check word derived from its address) and a pattern derived from
// its address and size, checked at every free, realloc (the prefix survives),
// hand-over and periodic scan; calloc memory is checked to be zero, alignments
// and malloc_usable_size >= size on every allocation.
//
// Around that:
//  - cross-thread frees: workers swap objects through 4096 shared slots, so most
//    objects are freed by a thread other than the one that allocated them;
//  - threads created and destroyed: workers live 20k..400k operations, then
//    hand part of their objects to the slots and exit; the main thread starts a
//    replacement, and bursts of short-lived threads allocate a little and exit;
//  - fork in the middle: every ~S/6 seconds a worker (or the main thread) forks
//    while the others keep allocating; the child checks the objects it
//    inherited, frees some, allocates and frees thousands more, starts a
//    thread that does the same, and exits; a child that hangs (a lock taken at
//    fork time and never released) is killed after 60 s and fails the run;
//  - the scavenger and the GC race the workload: unless --gentle, the program
//    sets AMMALLOC_GC_INTERVAL_MS=10, AMMALLOC_SCAVENGE_INTERVAL_MS=10 and
//    AMMALLOC_RELEASE_DELAY_MS=0 through am_option_set (the same values are
//    best also given in the environment); workers pause now and then for 20 ms
//    while holding objects, so that the GC takes their caches from under them;
//    the main thread reads the stats report and calls malloc_trim all along.
//
// At the end, with every thread joined, the program frees what it still holds
// except a known set of objects (the first slots), and reconciles the stats:
//     generic.current_allocated_bytes - baseline == sum of usable sizes held
// (the baseline is read at start, after a warm-up thread and fork, so that
// glibc's one-time allocations are in it; ammalloc's background thread, whose
// creation allocates glibc's TLS vector through malloc, is started before it
// if it can be, and otherwise its cost is added). Thread stacks are the program's own
// (mmap, pthread_attr_setstack): glibc frees the TLS vector of such a thread at
// join, where it would keep it with a cached stack of its own and the figures
// would not match. Then it frees the known set and requires the baseline
// exactly. Both reads are taken with the GC and the scavenger switched off and
// two consecutive reads equal, since they move bytes between the tiers
// that the figure is derived from.
//
// Output: progress every 5 s, then one summary line. Exit 0 pass, 1 failure
// (with a message), 77 when not running under ammalloc.
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <new>

namespace {

// ---- am_* entry points, from the preloaded library -----------------------------------

using prop_fn = int (*)(const char*, size_t*);
using opt_set_fn = int (*)(const char*, long long);
using opt_get_fn = int (*)(const char*, long long*);
using text_fn = size_t (*)(char*, size_t);
using free_sized_fn = void (*)(void*, size_t);
using free_aligned_sized_fn = void (*)(void*, size_t, size_t);
prop_fn am_prop;
opt_set_fn am_opt_set;
opt_get_fn am_opt_get;
text_fn am_text;
free_sized_fn p_free_sized;
free_aligned_sized_fn p_free_aligned_sized;

// ---- reporting -----------------------------------------------------------------------

std::atomic<bool> g_failed{false};

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > static_cast<int>(sizeof buf) - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  // write(2), not stdio: this may run in a forked child or with stdio locked.
  (void)!write(2, "stress: FAIL: ", 14);
  (void)!write(2, buf, static_cast<size_t>(n));
  g_failed = true;
  _exit(1);
}

// ---- random numbers, patterns, objects --------------------------------------------------

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

enum Api : uint32_t {
  kMalloc, kCalloc, kRealloc, kMemalign, kPosixMemalign, kAlignedAlloc, kValloc, kNew, kNewArray, kNewAligned,
  kApis
};
const char* const kApiNames[kApis] = {"malloc", "calloc", "realloc", "memalign", "posix_memalign",
                                      "aligned_alloc", "valloc", "operator new", "operator new[]",
                                      "aligned operator new"};

// The first 16 bytes of every object (all are >= 16 bytes).
struct Header {
  uint64_t size;
  uint32_t api_align;  // api | log2(alignment) << 8
  uint32_t check;      // mix(address, size, api_align)
};

constexpr size_t kMinSize = sizeof(Header);

uint32_t check_word(const void* p, uint64_t size, uint32_t api_align) {
  return static_cast<uint32_t>(mix(reinterpret_cast<uintptr_t>(p) ^ (size << 20) ^ api_align));
}

// Pattern regions of an n-byte object beyond the header: all of it up to 2 KiB;
// above, 1 KiB at each end and 64 bytes of every 4 KiB page.
template <typename F>
void for_regions(size_t n, F f) {
  if (n <= 2048) {
    f(kMinSize, n);
    return;
  }
  f(kMinSize, size_t{1024});
  for (size_t o = 4096; o + 64 <= n - 1024; o += 4096) f(o, o + 64);
  f(n - 1024, n);
}

uint8_t pattern_byte(uint64_t seed, size_t i) { return static_cast<uint8_t>(mix(seed + (i >> 3)) >> (8 * (i & 7))); }

void fill_range(uint8_t* p, size_t from, size_t to, uint64_t seed) {
  size_t i = from;
  for (; i < to && (i & 7); ++i) p[i] = pattern_byte(seed, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = mix(seed + (i >> 3));
    memcpy(p + i, &w, 8);
  }
  for (; i < to; ++i) p[i] = pattern_byte(seed, i);
}

size_t check_range(const uint8_t* p, size_t from, size_t to, uint64_t seed) {
  size_t i = from;
  for (; i < to && (i & 7); ++i)
    if (p[i] != pattern_byte(seed, i)) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != mix(seed + (i >> 3))) break;
  }
  for (; i < to; ++i)
    if (p[i] != pattern_byte(seed, i)) return i;
  return SIZE_MAX;
}

uint64_t seed_of(const void* p, size_t size) { return mix(reinterpret_cast<uintptr_t>(p) * 31 + size); }

void stamp(void* vp, size_t size, Api api, unsigned align_log2) {
  uint8_t* p = static_cast<uint8_t*>(vp);
  Header h{size, api | (align_log2 << 8), 0};
  h.check = check_word(p, size, h.api_align);
  memcpy(p, &h, sizeof h);
  uint64_t seed = seed_of(p, size);
  for_regions(size, [&](size_t from, size_t to) { fill_range(p, from, to, seed); });
}

// Checks an object; returns its header. want_size: what the holder believes
// (0: unknown, e.g. an object taken from a slot).
Header verify(const void* vp, size_t want_size, const char* when) {
  const uint8_t* p = static_cast<const uint8_t*>(vp);
  Header h;
  memcpy(&h, p, sizeof h);
  if (h.check != check_word(p, h.size, h.api_align) || (want_size && h.size != want_size) ||
      (h.api_align & 0xff) >= kApis)
    fail("%s: object %p: header corrupted (size %llu, want %zu, api %u)", when, vp,
         static_cast<unsigned long long>(h.size), want_size, h.api_align);
  uint64_t seed = seed_of(p, h.size);
  for_regions(h.size, [&](size_t from, size_t to) {
    size_t bad = check_range(p, from, to, seed);
    if (bad != SIZE_MAX)
      fail("%s: object %p (%s, %llu bytes) corrupted at offset %zu", when, vp, kApiNames[h.api_align & 0xff],
           static_cast<unsigned long long>(h.size), bad);
  });
  size_t usable = malloc_usable_size(const_cast<void*>(vp));
  if (usable < h.size)
    fail("%s: malloc_usable_size(%p) = %zu < %llu", when, vp, usable, static_cast<unsigned long long>(h.size));
  return h;
}

// Sizes like an inference server's: mostly small, some pages, a few large.
size_t pick_size(Rng& r, size_t budget_left) {
  uint64_t x = r.below(1000);
  size_t n;
  if (x < 700) n = kMinSize + r.below(256);
  else if (x < 900) n = 256 + r.below(4096);
  else if (x < 990) n = 4096 + r.below(256 * 1024);
  else n = 256 * 1024 + r.below(4 * 1024 * 1024);
  return n > budget_left ? kMinSize + r.below(512) : n;
}

struct Obj {
  void* p;
  size_t size;
};

void* allocate(Rng& r, size_t size) {
  Api api = r.below(1000) < 600 ? kMalloc : static_cast<Api>(r.below(kApis));
  unsigned lg = 0;
  void* p = nullptr;
  switch (api) {
    case kMalloc:
    case kRealloc:
      api = kMalloc;
      p = malloc(size);
      break;
    case kCalloc: {
      size_t count = 1 + r.below(8);
      size = (size + count - 1) / count * count;
      p = calloc(count, size / count);
      if (p) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        auto zero = [&](size_t from, size_t to) {
          for (size_t i = from; i < to; ++i)
            if (b[i]) fail("calloc(%zu, %zu) = %p: byte %zu is not 0", count, size / count, p, i);
        };
        zero(0, kMinSize);
        for_regions(size, zero);
      }
      break;
    }
    case kMemalign: lg = 4 + static_cast<unsigned>(r.below(9)); p = memalign(size_t{1} << lg, size); break;
    case kPosixMemalign:
      lg = 3 + static_cast<unsigned>(r.below(14));
      if (posix_memalign(&p, size_t{1} << lg, size) != 0) p = nullptr;
      break;
    case kAlignedAlloc: lg = 4 + static_cast<unsigned>(r.below(9)); p = aligned_alloc(size_t{1} << lg, size); break;
    case kValloc: lg = 12; p = valloc(size); break;
    case kNew: p = ::operator new(size); break;
    case kNewArray: p = ::operator new[](size); break;
    case kNewAligned:
      lg = 5 + static_cast<unsigned>(r.below(8));
      p = ::operator new(size, std::align_val_t(size_t{1} << lg));
      break;
    default: break;
  }
  if (p == nullptr) fail("%s(%zu) returned NULL", kApiNames[api], size);
  size_t align = size_t{1} << (lg < 4 ? 4 : lg);
  if (reinterpret_cast<uintptr_t>(p) & (align - 1))
    fail("%s(%zu, align %zu) = %p is misaligned", kApiNames[api], size, align, p);
  if (malloc_usable_size(p) < size) fail("%s(%zu): usable size %zu", kApiNames[api], size, malloc_usable_size(p));
  stamp(p, size, api, lg);
  return p;
}

void release(void* p, size_t want_size, unsigned which, const char* when) {
  Header h = verify(p, want_size, when);
  Api api = static_cast<Api>(h.api_align & 0xff);
  size_t align = size_t{1} << (h.api_align >> 8);
  switch (api) {
    case kNew:
      if (which & 1) ::operator delete(p, h.size);
      else ::operator delete(p);
      break;
    case kNewArray:
      if (which & 1) ::operator delete[](p, h.size);
      else ::operator delete[](p);
      break;
    case kNewAligned:
      if (which & 1) ::operator delete(p, h.size, std::align_val_t(align));
      else ::operator delete(p, std::align_val_t(align));
      break;
    case kMalloc: case kCalloc: case kRealloc:
      if ((which & 3) == 1 && p_free_sized) p_free_sized(p, h.size);
      else free(p);
      break;
    default:  // the aligned C APIs
      if ((which & 3) == 1 && p_free_aligned_sized) p_free_aligned_sized(p, align, h.size);
      else free(p);
      break;
  }
}

// realloc of a malloc-family object: the prefix survives.
void* reallocate(void* p, size_t new_size, const char* when) {
  Header h = verify(p, 0, when);
  const unsigned long old = reinterpret_cast<uintptr_t>(p);  // p is dead after realloc
  const uint64_t seed = seed_of(p, h.size);
  uint8_t before[64];
  size_t keep = h.size < new_size ? h.size : new_size;
  if (keep > sizeof before) keep = sizeof before;
  memcpy(before, p, keep);
  void* q = realloc(p, new_size);
  if (q == nullptr) fail("realloc(%#lx, %zu) returned NULL", old, new_size);
  if (memcmp(before, q, keep) != 0) fail("realloc(%#lx, %zu) = %p lost the first %zu bytes", old, new_size, q, keep);
  // The rest of the old pattern, within the old regions and the new size.
  size_t limit = h.size < new_size ? h.size : new_size;
  for_regions(h.size, [&](size_t from, size_t to) {
    if (from >= limit) return;
    size_t bad = check_range(static_cast<uint8_t*>(q), from, to < limit ? to : limit, seed);
    if (bad != SIZE_MAX)
      fail("realloc(%#lx, %zu) = %p lost offset %zu of %llu", old, new_size, q, bad,
           static_cast<unsigned long long>(h.size));
  });
  if (malloc_usable_size(q) < new_size) fail("realloc(%zu): usable size %zu", new_size, malloc_usable_size(q));
  stamp(q, new_size, kRealloc, 4);
  return q;
}

// ---- shared state -------------------------------------------------------------------

constexpr int kSlots = 4096;
constexpr int kKeep = 512;         // slots whose objects are kept to the end
constexpr int kMaxThreads = 64;
constexpr size_t kStackSize = 512 * 1024;
constexpr int kLocalCap = 1024;
constexpr size_t kLocalBudget = 48u << 20;
constexpr size_t kSlotMaxSize = 64 * 1024;  // larger objects stay with their thread

std::atomic<void*> g_slots[kSlots];
std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_ops{0}, g_cross{0}, g_threads{0}, g_forks{0}, g_gc_pauses{0};
std::atomic<int64_t> g_next_fork_ns{0};
int64_t g_fork_every_ns = 0;
uint64_t g_seed = 1;

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

void sleep_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Swaps p into a random slot; frees (or returns) what was there.
void* exchange(Rng& r, void* p) {
  void* old = g_slots[r.below(kSlots)].exchange(p, std::memory_order_acq_rel);
  if (old) g_cross.fetch_add(1, std::memory_order_relaxed);
  return old;
}

// ---- the forked child --------------------------------------------------------------------

void* child_thread(void* arg) {
  Rng r{reinterpret_cast<uintptr_t>(arg) | 1};
  Obj objs[256];
  for (int round = 0; round < 20; ++round) {
    for (Obj& o : objs) {
      o.size = pick_size(r, 1 << 20);
      o.p = allocate(r, o.size);
      o.size = reinterpret_cast<Header*>(o.p)->size;
    }
    for (Obj& o : objs) release(o.p, o.size, static_cast<unsigned>(r.next()), "fork child thread");
  }
  return nullptr;
}

// Runs in the child of a fork taken while other threads allocate. locals: the
// forking thread's objects (intact in the child's copy of the heap).
[[noreturn]] void child_main(Obj* locals, int n) {
  alarm(60);  // a deadlocked child dies by SIGALRM; the parent reports it
  Rng r{g_seed ^ static_cast<uint64_t>(getpid())};
  for (int i = 0; i < n; ++i) {
    verify(locals[i].p, locals[i].size, "fork child: inherited object");
    if (i & 1) release(locals[i].p, locals[i].size, static_cast<unsigned>(i), "fork child");
  }
  // Objects in the slots were complete when published; free some of them.
  for (int i = 0; i < kSlots; i += 7) {
    void* p = g_slots[i].load(std::memory_order_acquire);
    if (p) release(p, 0, static_cast<unsigned>(i), "fork child: slot object");
  }
  Obj objs[512];
  for (int round = 0; round < 10; ++round) {
    for (Obj& o : objs) {
      o.p = allocate(r, pick_size(r, 1 << 20));
      o.size = reinterpret_cast<Header*>(o.p)->size;
    }
    for (int i = 0; i < 512; i += 3) {
      objs[i].p = reallocate(objs[i].p, pick_size(r, 1 << 20), "fork child: realloc");
      objs[i].size = reinterpret_cast<Header*>(objs[i].p)->size;
    }
    for (Obj& o : objs) release(o.p, o.size, static_cast<unsigned>(r.next()), "fork child");
  }
  pthread_t t;  // default attributes: a stack from glibc, fine in a child
  if (pthread_create(&t, nullptr, child_thread, reinterpret_cast<void*>(r.next())) != 0)
    fail("fork child: pthread_create failed");
  pthread_join(t, nullptr);
  _exit(0);
}

// Forks, lets the child run, waits for it (at most 90 s).
void do_fork(Obj* locals, int n) {
  pid_t pid = fork();
  if (pid < 0) fail("fork: %s", strerror(errno));
  if (pid == 0) child_main(locals, n);
  g_forks.fetch_add(1, std::memory_order_relaxed);
  int status = 0;
  for (int waited = 0;; waited += 10) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) fail("waitpid: %s", strerror(errno));
    if (waited > 90000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail("fork child %d hung for 90 s (a lock held at fork time?)", pid);
    }
    sleep_ms(10);
  }
  if (WIFSIGNALED(status))
    fail("fork child died by signal %d%s", WTERMSIG(status),
         WTERMSIG(status) == SIGALRM ? " (SIGALRM: it hung for 60 s, deadlock?)" : "");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("fork child exited with %d", WEXITSTATUS(status));
}

bool fork_due() {
  int64_t due = g_next_fork_ns.load(std::memory_order_relaxed);
  int64_t now = now_ns();
  return now >= due && g_next_fork_ns.compare_exchange_strong(due, now + g_fork_every_ns);
}

// ---- workers ----------------------------------------------------------------------------

struct Worker {
  pthread_t th;
  void* stack;
  std::atomic<bool> running{false}, done{false};
  uint64_t lifetime;  // operations
  uint64_t seed;
  bool burst;         // a short-lived thread: a few allocations, then exit
};
Worker g_workers[kMaxThreads];

void* worker_main(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  Rng r{w.seed | 1};
  Obj local[kLocalCap];
  int n = 0;
  size_t bytes = 0;
  uint64_t ops = 0;
  for (; ops < w.lifetime && !g_stop.load(std::memory_order_relaxed); ++ops) {
    uint64_t x = r.below(1000);
    if (x < 400 || n == 0) {  // allocate
      if (n == kLocalCap) continue;
      size_t size = pick_size(r, kLocalBudget - bytes);
      void* p = allocate(r, size);
      size = reinterpret_cast<Header*>(p)->size;
      local[n++] = Obj{p, size};
      bytes += size;
    } else if (x < 680) {  // free one of ours
      int i = static_cast<int>(r.below(n));
      bytes -= local[i].size;
      release(local[i].p, local[i].size, static_cast<unsigned>(r.next()), "free");
      local[i] = local[--n];
    } else if (x < 760) {  // realloc one of ours (malloc family only)
      int i = static_cast<int>(r.below(n));
      Header* h = static_cast<Header*>(local[i].p);
      Api api = static_cast<Api>(h->api_align & 0xff);
      if (api != kMalloc && api != kCalloc && api != kRealloc) continue;
      size_t size = pick_size(r, kLocalBudget - bytes + local[i].size);
      bytes -= local[i].size;
      local[i].p = reallocate(local[i].p, size, "realloc");
      local[i].size = size;
      bytes += size;
    } else if (x < 990) {  // hand one over; take (and free or keep) what was in the slot
      int i = static_cast<int>(r.below(n));
      if (local[i].size > kSlotMaxSize) continue;
      verify(local[i].p, local[i].size, "before hand-over");
      bytes -= local[i].size;
      void* got = exchange(r, local[i].p);
      local[i] = local[--n];
      if (got) {
        Header h = verify(got, 0, "taken from a slot");
        if (r.below(2) && n < kLocalCap && bytes + h.size <= kLocalBudget) {
          local[n++] = Obj{got, h.size};
          bytes += h.size;
        } else {
          release(got, h.size, static_cast<unsigned>(r.next()), "cross-thread free");
        }
      }
    } else if (x < 995) {  // scan everything we hold
      for (int i = 0; i < n; ++i) verify(local[i].p, local[i].size, "scan");
    } else if (r.below(1000) == 0) {  // idle while holding objects: the GC takes our cache
      g_gc_pauses.fetch_add(1, std::memory_order_relaxed);
      sleep_ms(20 + static_cast<int>(r.below(20)));
    }
    if (!w.burst && (ops & 255) == 0 && fork_due()) do_fork(local, n);
  }
  // Exit: part goes to the slots (freed later by other threads), the rest here.
  for (int i = 0; i < n; ++i) {
    if (local[i].size <= kSlotMaxSize && r.below(3) == 0) {
      verify(local[i].p, local[i].size, "before hand-over at exit");
      if (void* got = exchange(r, local[i].p)) release(got, 0, static_cast<unsigned>(i), "cross-thread free at exit");
    } else {
      release(local[i].p, local[i].size, static_cast<unsigned>(i), "free at exit");
    }
  }
  g_ops.fetch_add(ops, std::memory_order_relaxed);
  w.done.store(true, std::memory_order_release);
  return nullptr;
}

// Our own stacks: see the header comment (glibc keeps the TLS vector of a thread
// whose stack it caches, and that vector is a malloc'd block).
void start_worker(int i, Rng& r, bool burst) {
  Worker& w = g_workers[i];
  if (w.stack == nullptr) {
    w.stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w.stack == MAP_FAILED) fail("mmap of a thread stack failed");
  }
  w.done = false;
  w.burst = burst;
  w.lifetime = burst ? 50 + r.below(2000) : 20000 + r.below(380000);
  w.seed = r.next();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, w.stack, kStackSize);
  int rc = pthread_create(&w.th, &attr, worker_main, &w);
  pthread_attr_destroy(&attr);
  if (rc != 0) fail("pthread_create: %s", strerror(rc));
  w.running = true;
  g_threads.fetch_add(1, std::memory_order_relaxed);
}

void join_worker(int i) {
  pthread_join(g_workers[i].th, nullptr);
  g_workers[i].running = false;
}

// ---- stats ---------------------------------------------------------------------------------

size_t prop(const char* name) {
  size_t v = 0;
  if (!am_prop(name, &v)) fail("am_get_numeric_property(%s): unknown", name);
  return v;
}

long long opt_get(const char* name) {
  long long v = -1;
  return am_opt_get && am_opt_get(name, &v) ? v : -1;
}

void opt_set(const char* name, long long v) {
  if (v < 0) return;
  if (int rc = am_opt_set(name, v)) fail("am_option_set(%s, %lld) = %d", name, v, rc);
}

// GC and scavenger off, then bytes in use once two reads 20 ms apart agree.
size_t quiet_in_use() {
  opt_set("AMMALLOC_GC_INTERVAL_MS", 0);
  opt_set("AMMALLOC_SCAVENGER", 0);
  sleep_ms(100);
  size_t last = prop("generic.current_allocated_bytes");
  for (int i = 0; i < 100; ++i) {
    sleep_ms(20);
    size_t v = prop("generic.current_allocated_bytes");
    if (v == last) return v;
    last = v;
  }
  fail("generic.current_allocated_bytes does not settle with every thread joined and the GC off");
}

void* warmup_thread(void*) {
  free(malloc(100));
  return nullptr;
}

// Work that gives ammalloc's background thread a reason to start: caches on
// several threads, free pages in the page heap.
void* provoke_thread(void*) {
  void* p[64];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 64; ++i) p[i] = malloc(i % 8 == 0 ? (1u << 20) : 64u << (i % 8));
    for (int i = 0; i < 64; ++i) free(p[i]);
  }
  return nullptr;
}

// Threads of this process (/proc/self/task), read with getdents64: no malloc.
int count_tasks() {
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  alignas(8) char buf[4096];
  int n = 0;
  for (;;) {
    long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (got <= 0) break;
    for (long off = 0; off < got;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      if (d->d_name[0] != '.') ++n;
      off += d->d_reclen;
    }
  }
  close(fd);
  return n;
}

int usage() {
  fprintf(stderr, "usage: stress [--threads N] [--seconds S | --minutes M] [--seed X] [--gentle]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 4;
  double seconds = 20;
  bool gentle = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
    else if (!strcmp(a, "--seconds") && v) seconds = atof(argv[++i]);
    else if (!strcmp(a, "--minutes") && v) seconds = 60 * atof(argv[++i]);
    else if (!strcmp(a, "--seed") && v) g_seed = strtoull(argv[++i], nullptr, 0);
    else if (!strcmp(a, "--gentle")) gentle = true;
    else return usage();
  }
  if (threads < 1 || threads > kMaxThreads - 8 || seconds <= 0) return usage();

  am_prop = reinterpret_cast<prop_fn>(dlsym(RTLD_DEFAULT, "am_get_numeric_property"));
  am_opt_set = reinterpret_cast<opt_set_fn>(dlsym(RTLD_DEFAULT, "am_option_set"));
  am_opt_get = reinterpret_cast<opt_get_fn>(dlsym(RTLD_DEFAULT, "am_option_get"));
  am_text = reinterpret_cast<text_fn>(dlsym(RTLD_DEFAULT, "am_stats_text"));
  p_free_sized = reinterpret_cast<free_sized_fn>(dlsym(RTLD_DEFAULT, "free_sized"));
  p_free_aligned_sized = reinterpret_cast<free_aligned_sized_fn>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  Dl_info info{};
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  if (!am_prop || !am_opt_set || !dladdr(m, &info) || !info.dli_fname || !strstr(info.dli_fname, "ammalloc")) {
    printf("stress: SKIP: not running under ammalloc (LD_PRELOAD=.../libammalloc.so); malloc is from %s\n",
           info.dli_fname ? info.dli_fname : "?");
    return 77;
  }
  printf("stress: %d threads, %.0f s, seed %llu, malloc from %s\n", threads, seconds,
         static_cast<unsigned long long>(g_seed), info.dli_fname);
  fflush(stdout);
  alarm(static_cast<unsigned>(seconds) + 300);  // a hang anywhere ends the run

  // Warm-up: glibc's one-time allocations of the first thread and fork go into
  // the baseline.
  {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    void* st = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_attr_setstack(&attr, st, kStackSize);
    pthread_t t;
    if (pthread_create(&t, &attr, warmup_thread, nullptr) != 0) fail("pthread_create failed");
    pthread_join(t, nullptr);
    pthread_attr_destroy(&attr);
    munmap(st, kStackSize);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, nullptr, 0);
  }
  // ammalloc's background thread: pthread_create allocates its TLS vector
  // (glibc's DTV, 320 bytes on Debian 12) through malloc, i.e. ammalloc, and
  // that block is "in use by the application" for the life of the process.
  // Measure what a thread with glibc's own stack costs, then try to get the
  // background thread started before the baseline (it starts lazily, at a slow
  // path once there is work for it); if it only starts later, the end
  // reconciliation adds that cost once per extra task.
  long long gc0 = opt_get("AMMALLOC_GC_INTERVAL_MS"), scav0 = opt_get("AMMALLOC_SCAVENGER");
  size_t thread_cost;
  {
    size_t before = quiet_in_use();
    pthread_t t;
    if (pthread_create(&t, nullptr, warmup_thread, nullptr) != 0) fail("pthread_create failed");
    pthread_join(t, nullptr);
    thread_cost = quiet_in_use() - before;
  }
  opt_set("AMMALLOC_SCAVENGER", 1);
  opt_set("AMMALLOC_GC_INTERVAL_MS", 10);
  for (int round = 0; round < 50 && count_tasks() < 2; ++round) {
    pthread_t t[2];
    for (pthread_t& x : t)
      if (pthread_create(&x, nullptr, provoke_thread, nullptr) != 0) fail("pthread_create failed");
    for (pthread_t& x : t) pthread_join(x, nullptr);
    provoke_thread(nullptr);
    sleep_ms(20);
  }
  const int tasks0 = count_tasks();
  size_t baseline = quiet_in_use();
  if (gentle) {
    opt_set("AMMALLOC_GC_INTERVAL_MS", gc0);
    opt_set("AMMALLOC_SCAVENGER", scav0);
  } else {
    opt_set("AMMALLOC_SCAVENGER", 1);
    opt_set("AMMALLOC_SCAVENGE_INTERVAL_MS", 10);
    opt_set("AMMALLOC_RELEASE_DELAY_MS", 0);
    opt_set("AMMALLOC_GC_INTERVAL_MS", 10);
  }
  printf("stress: baseline %zu bytes in use; GC every %lld ms, scavenger %lld every %lld ms, release delay %lld ms\n",
         baseline, opt_get("AMMALLOC_GC_INTERVAL_MS"), opt_get("AMMALLOC_SCAVENGER"),
         opt_get("AMMALLOC_SCAVENGE_INTERVAL_MS"), opt_get("AMMALLOC_RELEASE_DELAY_MS"));
  fflush(stdout);

  Rng r{g_seed * 0x9e3779b97f4a7c15ull | 1};
  const int64_t t0 = now_ns(), end = t0 + static_cast<int64_t>(seconds * 1e9);
  g_fork_every_ns = static_cast<int64_t>(seconds * 1e9 / 6);
  g_next_fork_ns = t0 + g_fork_every_ns;
  for (int i = 0; i < threads; ++i) start_worker(i, r, false);
  static char report[64 * 1024];  // static: the main thread allocates nothing while it watches
  int64_t next_print = t0 + 5000000000ll, next_trim = t0, next_burst = t0;
  bool main_forked = false;
  while (now_ns() < end) {
    sleep_ms(5);
    int64_t now = now_ns();
    for (int i = 0; i < kMaxThreads; ++i) {
      Worker& w = g_workers[i];
      if (w.running && w.done.load(std::memory_order_acquire)) {
        bool was_burst = w.burst;
        join_worker(i);
        if (!was_burst) start_worker(i, r, false);  // keep `threads` long-lived workers
      }
    }
    if (now >= next_burst) {  // short-lived threads: allocate a little, exit
      next_burst = now + 50000000;
      for (int i = threads; i < threads + 8; ++i)
        if (!g_workers[i].running) start_worker(i, r, true);
    }
    if (now >= next_trim) {
      next_trim = now + 100000000;
      if (am_text) am_text(report, sizeof report);
      if (r.below(4) == 0) malloc_trim(0);
    }
    if (!main_forked && now >= t0 + (end - t0) / 2) {  // and once from the main thread
      main_forked = true;
      do_fork(nullptr, 0);
    }
    if (now >= next_print) {
      next_print = now + 5000000000ll;
      printf("stress: %3.0f s: %llu threads started, %llu forks, %llu cross-thread hand-overs, in use %zu\n",
             (now - t0) / 1e9, static_cast<unsigned long long>(g_threads.load()),
             static_cast<unsigned long long>(g_forks.load()), static_cast<unsigned long long>(g_cross.load()),
             prop("generic.current_allocated_bytes"));
      fflush(stdout);
    }
  }
  g_stop = true;
  for (int i = 0; i < kMaxThreads; ++i)
    if (g_workers[i].running) join_worker(i);

  // Free everything but the known set: the objects in the first kKeep slots.
  size_t held = 0, kept = 0;
  for (int i = 0; i < kSlots; ++i) {
    void* p = g_slots[i].exchange(nullptr);
    if (!p) continue;
    Header h = verify(p, 0, "at the end");
    if (i < kKeep) {
      g_slots[i] = p;
      held += malloc_usable_size(p);
      ++kept;
    } else {
      release(p, h.size, static_cast<unsigned>(i), "at the end");
    }
  }
  size_t in_use = quiet_in_use();
  printf("stress: end: in use %zu - baseline %zu = %lld; the program holds %zu objects of %zu usable bytes\n",
         in_use, baseline, static_cast<long long>(in_use) - static_cast<long long>(baseline), kept, held);
  if (int extra = count_tasks() - tasks0; extra > 0) {
    printf("stress: %d thread(s) of ammalloc started during the run: %d x %zu bytes of glibc TLS vectors "
           "count as in use\n", extra, extra, thread_cost);
    baseline += static_cast<size_t>(extra) * thread_cost;
  }
  if (in_use - baseline != held)
    fail("stats do not reconcile: in use %zu - baseline %zu = %lld, but the program holds %zu bytes (off by %lld)",
         in_use, baseline, static_cast<long long>(in_use - baseline), held,
         static_cast<long long>(in_use - baseline - held));
  for (int i = 0; i < kKeep; ++i)
    if (void* p = g_slots[i].exchange(nullptr)) release(p, 0, static_cast<unsigned>(i), "the known set");
  size_t after = quiet_in_use();
  if (after != baseline) fail("after freeing the known set: in use %zu, baseline %zu", after, baseline);
  opt_set("AMMALLOC_GC_INTERVAL_MS", gc0);
  opt_set("AMMALLOC_SCAVENGER", scav0);
  if (am_text) {  // what the background thread did while the workload ran
    am_text(report, sizeof report);
    for (char* line = report; line && *line;) {
      char* nl = strchr(line, '\n');
      if (nl) *nl = 0;
      if (strstr(line, "GC") || strstr(line, "scavenger") || strstr(line, "wake-ups")) printf("stress: %s\n", line);
      line = nl ? nl + 1 : nullptr;
    }
  }
  printf("stress: PASS: %.1f s, %llu operations, %llu threads started and joined, %llu forks, "
         "%llu cross-thread hand-overs, %llu GC pauses; stats reconciled (%zu kept objects, %zu bytes)\n",
         (now_ns() - t0) / 1e9, static_cast<unsigned long long>(g_ops.load()),
         static_cast<unsigned long long>(g_threads.load()), static_cast<unsigned long long>(g_forks.load()),
         static_cast<unsigned long long>(g_cross.load()), static_cast<unsigned long long>(g_gc_pauses.load()),
         kept, held);
  return 0;
}

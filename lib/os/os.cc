// System-call wrappers (see os.h for the contract).
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "os/nocancel.h"

extern char** environ;

namespace am::os {

namespace {

// Fault injection (os.h): armed while g_inject_armed; calls are numbered from 1
// after arming, and those in [g_inject_first, g_inject_last] fail.
constinit std::atomic<bool> g_inject_armed{false};
constinit std::atomic<uint64_t> g_inject_calls{0};
constinit std::atomic<uint64_t> g_inject_failed{0};
constinit std::atomic<uint64_t> g_inject_first{0};
constinit std::atomic<uint64_t> g_inject_last{0};
constinit std::atomic<unsigned> g_inject_kinds{0};

// Whether this memory call (of kind `kind`) is to fail (and then errno is ENOMEM).
bool inject_failure(unsigned kind) {
  if (__builtin_expect(!g_inject_armed.load(std::memory_order_acquire), 1)) return false;
  if (!(g_inject_kinds.load(std::memory_order_relaxed) & kind)) return false;
  uint64_t n = g_inject_calls.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < g_inject_first.load(std::memory_order_relaxed) || n > g_inject_last.load(std::memory_order_relaxed))
    return false;
  g_inject_failed.fetch_add(1, std::memory_order_relaxed);
  errno = ENOMEM;
  return true;
}

// Over-reserve by the alignment, then trim both ends: the kernel only promises
// page alignment, and 2 MiB alignment is what lets THP back a region.
void* map_trimmed(size_t size, size_t alignment, int prot) {
  size_t span = size + alignment;
  if (span < size) return nullptr;
  void* raw = mmap(nullptr, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + span, used_end = aligned + size;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace

void inject_map_failures(uint64_t nth, uint64_t count, unsigned kinds) {
  g_inject_armed.store(false, std::memory_order_relaxed);
  g_inject_calls.store(0, std::memory_order_relaxed);
  g_inject_failed.store(0, std::memory_order_relaxed);
  if (nth == 0 || count == 0 || kinds == 0) return;
  g_inject_kinds.store(kinds, std::memory_order_relaxed);
  g_inject_first.store(nth, std::memory_order_relaxed);
  g_inject_last.store(nth - 1 + count < nth ? ~uint64_t{0} : nth - 1 + count, std::memory_order_relaxed);
  g_inject_armed.store(true, std::memory_order_release);
}

uint64_t injected_map_calls() { return g_inject_calls.load(std::memory_order_relaxed); }
uint64_t injected_map_failures() { return g_inject_failed.load(std::memory_order_relaxed); }

void* map_aligned(size_t size, size_t alignment) {
  if (inject_failure(kMapAlignedCall)) return nullptr;
  return map_trimmed(size, alignment, PROT_READ | PROT_WRITE);
}

void unmap(void* p, size_t size) { munmap(p, size); }

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

void* reserve(size_t size, size_t alignment, uintptr_t at) {
  if (inject_failure(kReserveCall)) return nullptr;
  constexpr int kFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (at != 0) {
    void* p = mmap(reinterpret_cast<void*>(at), size, PROT_NONE, kFlags | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    if (reinterpret_cast<uintptr_t>(p) != at) {  // a kernel older than 4.17 took it as a hint
      munmap(p, size);
      return nullptr;
    }
    return p;
  }
  return map_trimmed(size, alignment, PROT_NONE);
}

bool commit(void* p, size_t size) {
  if (inject_failure(kCommitCall)) return false;
  return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

int guard_install(void* p, size_t size) { return madvise(p, size, kMadvGuardInstall) == 0 ? 0 : -errno; }
int guard_remove(void* p, size_t size) { return madvise(p, size, kMadvGuardRemove) == 0 ? 0 : -errno; }

size_t memory_ceiling() {
  size_t ceiling = ~size_t{0};
  // Raw system calls: the layout test allows only a short list of libc names.
  struct sysinfo si;
  if (syscall(SYS_sysinfo, &si) == 0) {
    unsigned __int128 b = (static_cast<unsigned __int128>(si.totalram) + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
    if (b < ceiling) ceiling = static_cast<size_t>(b);
  }
  struct rlimit rl;
  if (syscall(SYS_prlimit64, 0, RLIMIT_AS, nullptr, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < ceiling)
    ceiling = static_cast<size_t>(rl.rlim_cur);
  return ceiling;
}

bool release(void* p, size_t size) {
  int rc;
  do {
    rc = madvise(p, size, MADV_DONTNEED);
  } while (rc != 0 && errno == EAGAIN);
  return rc == 0;
}

bool advise_hugepage(void* p, size_t size) { return madvise(p, size, MADV_HUGEPAGE) == 0; }
bool advise_nohugepage(void* p, size_t size) { return madvise(p, size, MADV_NOHUGEPAGE) == 0; }

bool protect(void* p, size_t size, bool accessible) {
  return mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

long mbind(void* p, size_t size, int mode, const unsigned long* nodemask, unsigned long maxnode) {
  // The kernel reads maxnode - 1 bits (a historical off-by-one libnuma also
  // compensates for).
  long rc = syscall(SYS_mbind, p, size, mode, nodemask, nodemask ? maxnode + 1 : 0, 0);
  return rc == 0 ? 0 : -errno;
}

long get_mempolicy(int* mode, unsigned long* nodemask, unsigned long maxnode, const void* addr,
                   unsigned long flags) {
  long rc = syscall(SYS_get_mempolicy, mode, nodemask, nodemask ? maxnode + 1 : 0, addr, flags);
  return rc == 0 ? 0 : -errno;
}

bool getcpu(unsigned* cpu, unsigned* node) {
  unsigned c = 0, n = 0;
  if (syscall(SYS_getcpu, &c, &n, nullptr) != 0) return false;
  if (cpu) *cpu = c;
  if (node) *node = n;
  return true;
}

void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = nocancel_write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void abort_process() {
  // abort() may flush stdio (which may allocate); raise SIGABRT ourselves first.
  signal(SIGABRT, SIG_DFL);
  raise(SIGABRT);
  _exit(134);
}

void yield_cpu() { sched_yield(); }

namespace {
uint64_t clock_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }
uint64_t coarse_now_ns() { return clock_ns(CLOCK_MONOTONIC_COARSE); }

uint64_t random_u64() {
  uint64_t v = 0;
  long n = syscall(SYS_getrandom, &v, sizeof v, 0x1 /* GRND_NONBLOCK */);
  if (n == static_cast<long>(sizeof v) && v != 0) return v;
  // splitmix64 finaliser over what differs between processes and runs.
  uint64_t z = now_ns() ^ (static_cast<uint64_t>(getpid()) << 40) ^ reinterpret_cast<uintptr_t>(&v);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) | 1;
}

int thread_id() { return static_cast<int>(syscall(SYS_gettid)); }
int process_id() { return static_cast<int>(getpid()); }
long system_page_size() { return sysconf(_SC_PAGESIZE); }

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000ull), static_cast<long>(ns % 1000000000ull)};
  while (nocancel_nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

namespace {
// MEMBARRIER_CMD_* values from <linux/membarrier.h>, kept here so the build
// does not depend on the kernel headers' version.
constexpr int kCmdQuery = 0, kCmdGlobal = 1, kCmdPrivateExpedited = 1 << 3,
              kCmdRegisterPrivateExpedited = 1 << 4;
// Written by whichever thread registers first (two may race: same values).
constinit std::atomic<int> g_membarrier_cmd{-1};
}  // namespace

bool membarrier_init() {
  if (g_membarrier_cmd.load(std::memory_order_acquire) >= 0) return true;
  long cmds = syscall(SYS_membarrier, kCmdQuery, 0);
  if (cmds < 0) return false;
  if ((cmds & kCmdPrivateExpedited) && syscall(SYS_membarrier, kCmdRegisterPrivateExpedited, 0) == 0) {
    g_membarrier_cmd.store(kCmdPrivateExpedited, std::memory_order_release);
  } else if (cmds & kCmdGlobal) {
    g_membarrier_cmd.store(kCmdGlobal, std::memory_order_release);
  } else {
    return false;
  }
  return true;
}

void membarrier() {
  const int cmd = g_membarrier_cmd.load(std::memory_order_acquire);
  if (cmd < 0 || syscall(SYS_membarrier, cmd, 0) != 0) {
    // Unreachable once membarrier_init() succeeded (the kernel does not revoke
    // the registration); the GC relies on this fence, so never pretend.
    abort_process();
  }
}

const char* get_env(const char* name) {
  // getenv() does not allocate either, but walking environ ourselves keeps this
  // usable from the dynamic loader's earliest calls and under any libc.
  if (environ == nullptr) return nullptr;
  for (char** e = environ; *e; ++e) {
    const char* a = *e;
    const char* b = name;
    while (*b && *a == *b) ++a, ++b;
    if (*b == '\0' && *a == '=') return a + 1;
  }
  return nullptr;
}

const char* env_entry(size_t i) {
  if (environ == nullptr) return nullptr;
  for (size_t k = 0; k < i; ++k)
    if (environ[k] == nullptr) return nullptr;
  return environ[i];
}

}  // namespace am::os

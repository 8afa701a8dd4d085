// System-call wrappers (see os.h for the contract).
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

namespace am::os {

void* map_aligned(size_t size, size_t alignment) {
  // Over-reserve by the alignment, then trim both ends: the kernel only
  // promises page alignment, and 2 MiB alignment is what lets THP back a region.
  size_t span = size + alignment;
  if (span < size) return nullptr;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + span, used_end = aligned + size;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  return reinterpret_cast<void*>(aligned);
}

void unmap(void* p, size_t size) { munmap(p, size); }

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
    ssize_t n = write(fd, data, len);
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

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

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
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

namespace {
// MEMBARRIER_CMD_* values from <linux/membarrier.h>, kept here so the build
// does not depend on the kernel headers' version.
constexpr int kCmdQuery = 0, kCmdGlobal = 1, kCmdPrivateExpedited = 1 << 3,
              kCmdRegisterPrivateExpedited = 1 << 4;
constinit int g_membarrier_cmd = -1;
}  // namespace

bool membarrier_init() {
  if (g_membarrier_cmd >= 0) return true;
  long cmds = syscall(SYS_membarrier, kCmdQuery, 0);
  if (cmds < 0) return false;
  if ((cmds & kCmdPrivateExpedited) && syscall(SYS_membarrier, kCmdRegisterPrivateExpedited, 0) == 0) {
    g_membarrier_cmd = kCmdPrivateExpedited;
  } else if (cmds & kCmdGlobal) {
    g_membarrier_cmd = kCmdGlobal;
  } else {
    return false;
  }
  return true;
}

void membarrier() {
  if (g_membarrier_cmd < 0 || syscall(SYS_membarrier, g_membarrier_cmd, 0) != 0) {
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

long read_small_file(const char* path, char* buf, size_t len) {
  if (len == 0) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < len) {
    ssize_t n = read(fd, buf + got, len - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  buf[got] = '\0';
  return static_cast<long>(got);
}

bool for_each_line(const char* path, char* buf, size_t len, bool (*fn)(const char* line, void* ctx),
                   void* ctx) {
  if (len < 2) return false;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t have = 0;      // bytes of the current (unfinished) line in buf
  bool skipping = false;  // the current line overflowed: drop until its newline
  bool go = true;
  for (;;) {
    ssize_t n = read(fd, buf + have, len - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t end = have + static_cast<size_t>(n), start = 0;
    for (size_t i = have; i < end && go; ++i) {
      if (buf[i] != '\n') continue;
      buf[i] = '\0';
      if (!skipping) go = fn(buf + start, ctx);
      skipping = false;
      start = i + 1;
    }
    if (!go) break;
    // Keep the unfinished tail at the front; a line filling the whole buffer
    // is handed over cut, and the rest of it skipped.
    have = end - start;
    if (start > 0 && have > 0) memmove(buf, buf + start, have);
    if (have == len - 1) {
      buf[have] = '\0';
      if (!skipping) go = fn(buf, ctx);
      skipping = true;
      have = 0;
      if (!go) break;
    }
  }
  if (go && have > 0 && !skipping) {
    buf[have] = '\0';
    fn(buf, ctx);
  }
  close(fd);
  return true;
}

namespace {
long parse_decimal(const char* p) {
  long v = 0;
  while (*p == ' ' || *p == '\t') ++p;
  if (*p < '0' || *p > '9') return -1;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}
}  // namespace

bool only_live_thread() {
  char buf[2048];
  if (read_small_file("/proc/self/status", buf, sizeof buf) <= 0) return false;
  const char* t = strstr(buf, "\nThreads:");
  long threads = t ? parse_decimal(t + 9) : -1;
  if (threads == 1) return true;
  // Two: us and a leader that called pthread_exit (a zombie until the group ends).
  int pid = process_id();
  if (threads != 2 || thread_id() == pid) return false;
  char path[64] = "/proc/self/task/";
  char digits[16];
  int n = 0;
  for (unsigned v = static_cast<unsigned>(pid); n == 0 || v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  size_t len = strlen(path);
  while (n > 0) path[len++] = digits[--n];
  memcpy(path + len, "/stat", 6);
  if (read_small_file(path, buf, sizeof buf) <= 0) return false;
  const char* close_paren = strrchr(buf, ')');  // the command name may hold ')'
  return close_paren != nullptr && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

size_t resident_bytes() {
  char buf[128];
  if (read_small_file("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
  const char* p = buf;
  while (*p && *p != ' ') ++p;  // skip total size
  while (*p == ' ') ++p;
  size_t pages = 0;
  while (*p >= '0' && *p <= '9') pages = pages * 10 + static_cast<size_t>(*p++ - '0');
  return pages * static_cast<size_t>(system_page_size());
}

}  // namespace am::os

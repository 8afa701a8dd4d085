/* rlimit_as: an allocation-heavy program run under RLIMIT_AS at a range of
 * limits (issue 13, item 3: out of memory is NULL + ENOMEM, never an abort).
 *
 *   rlimit_as drive [--lib PATH] [--limits N] [--name NAME] [--from-exec]
 *       Runs N children (default 20), each this program in `work` mode with
 *       PATH preloaded (none: the system malloc), at N limits in geometric
 *       steps. Prints one line per child and "RLIMIT_AS children killed: K
 *       of N" (by a signal: an abort, a crash) and "RLIMIT_AS contract
 *       breaches: B of N" (a NULL without ENOMEM, or no recovery after
 *       everything was freed). Exit 0 when both are 0.
 *       By default each child sets its own limit at the top of main (its
 *       address space size then plus a headroom of 1 MiB to 2 GiB): the
 *       loader and libc always start, but an allocator that initialised
 *       before main (a preloaded one usually has) keeps what it reserved then.
 *       With --from-exec the limit is set before exec, the same for every
 *       allocator: the system malloc's address space size at main (a probe
 *       run) plus 16 MiB to 2 GiB, so an allocator's start-up runs under it too.
 *   rlimit_as work HEADROOM
 *       Sets RLIMIT_AS to its own address space size now plus HEADROOM bytes
 *       (0: leaves the limit as it is), then allocates (malloc, calloc,
 *       realloc, posix_memalign, aligned_alloc; 16 bytes to 512 MiB) keeping
 *       up to 4,096 blocks live until 2,000 requests have failed or 100,000
 *       were made; every failure must be NULL + ENOMEM (exit 2 otherwise).
 *       Then it frees everything and 200 small requests and one of 256 KiB
 *       must succeed (exit 3 otherwise). Only the first and last byte of a
 *       block are touched: the limit is on address space, and the machine's
 *       memory is not what is tested.
 *   rlimit_as probe
 *       Prints its address space size at the top of main.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 4096

static void* g_slot[SLOTS];
static size_t g_size[SLOTS];

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

/* VmSize from /proc/self/status, in bytes (0 if unreadable). No stdio: the
 * system malloc must not be asked for anything before the limit. */
static size_t vm_size(void) {
  static char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = strstr(buf, "VmSize:");
  if (!p) return 0;
  return (size_t)strtoull(p + 7, NULL, 10) * 1024;
}

static void say(const char* s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static size_t pick_size(void) {
  uint64_t r = next_rand() % 1000;
  if (r < 700) return 16 + next_rand() % 4096;
  if (r < 900) return 4096 + next_rand() % (256 << 10);
  if (r < 985) return (256 << 10) + next_rand() % (16 << 20);
  return (64u << 20) + next_rand() % (448u << 20);
}

static void touch(void* p, size_t size) {
  unsigned char* c = p;
  c[0] = 1;
  c[size - 1] = 2;
}

static int work(size_t headroom) {
  if (headroom > 0) {
    size_t vm = vm_size();
    if (vm == 0) return 4;
    struct rlimit rl = {vm + headroom, vm + headroom};
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 4;
  }
  unsigned failures = 0, ops = 0;
  for (; ops < 100000 && failures < 2000; ++ops) {
    size_t i = next_rand() % SLOTS;
    size_t size = pick_size();
    unsigned kind = (unsigned)(next_rand() % 10);
    void* p = NULL;
    errno = 0;
    if (kind == 0 && g_slot[i]) {
      p = realloc(g_slot[i], size);
      if (p == NULL) {
        if (errno != ENOMEM) {
          say("rlimit_as: realloc failed without ENOMEM\n");
          return 2;
        }
        ++failures;
        continue;
      }
      g_slot[i] = p;
      g_size[i] = size;
      touch(p, size);
      continue;
    }
    free(g_slot[i]);
    g_slot[i] = NULL;
    if (kind == 1) {
      p = calloc(1, size);
    } else if (kind == 2) {
      int rc = posix_memalign(&p, (size_t)64 << (next_rand() % 15), size);
      if (rc != 0) {
        if (rc != ENOMEM) {
          say("rlimit_as: posix_memalign failed without ENOMEM\n");
          return 2;
        }
        p = NULL;
        errno = ENOMEM;
      }
    } else if (kind == 3) {
      size_t align = (size_t)4096 << (next_rand() % 10);
      p = aligned_alloc(align, (size + align - 1) & ~(align - 1));
    } else {
      p = malloc(size);
    }
    if (p == NULL) {
      if (errno != ENOMEM) {
        say("rlimit_as: allocation failed without ENOMEM\n");
        return 2;
      }
      ++failures;
      continue;
    }
    touch(p, size);
    g_slot[i] = p;
    g_size[i] = size;
  }
  for (size_t i = 0; i < SLOTS; ++i) {
    free(g_slot[i]);
    g_slot[i] = NULL;
  }
  /* Memory is back: small requests and a medium one succeed. */
  for (size_t i = 0; i < 200; ++i) {
    g_slot[i] = malloc(16 + i * 8);
    if (g_slot[i] == NULL) {
      say("rlimit_as: no recovery: a small malloc failed after everything was freed\n");
      return 3;
    }
    touch(g_slot[i], 16 + i * 8);
  }
  void* m = malloc(256 << 10);
  if (m == NULL) {
    say("rlimit_as: no recovery: malloc(256 KiB) failed after everything was freed\n");
    return 3;
  }
  free(m);
  for (size_t i = 0; i < 200; ++i) free(g_slot[i]);
  char line[128];
  int n = snprintf(line, sizeof line, "ops=%u failed=%u\n", ops, failures);
  if (n > 0) {
    ssize_t r = write(1, line, (size_t)n);
    (void)r;
  }
  return 0;
}

/* The system malloc's address space size at main: a child of this program
 * in `probe` mode, nothing preloaded. 0 if it could not be read. */
static size_t probe_vm(void) {
  int out[2];
  if (pipe(out) != 0) return 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    close(out[0]);
    dup2(out[1], 1);
    close(out[1]);
    unsetenv("LD_PRELOAD");
    execl("/proc/self/exe", "rlimit_as", "probe", (char*)NULL);
    _exit(127);
  }
  close(out[1]);
  char buf[64] = {0};
  ssize_t n = read(out[0], buf, sizeof buf - 1);
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  return n > 0 ? (size_t)strtoull(buf, NULL, 10) : 0;
}

static int drive(const char* lib, int limits, const char* name, int from_exec) {
  const size_t lo = (size_t)(from_exec ? 16 : 1) << 20, hi = (size_t)2 << 30;
  const size_t base = from_exec ? probe_vm() : 0;
  if (from_exec && base == 0) {
    fprintf(stderr, "rlimit_as: the probe could not read its address space size\n");
    return 1;
  }
  int killed = 0, breaches = 0, ran = 0;
  for (int k = 0; k < limits; ++k) {
    /* Geometric from lo to hi. */
    double f = limits > 1 ? (double)k / (limits - 1) : 0;
    size_t headroom = (size_t)((double)lo * pow((double)hi / (double)lo, f));
    if (headroom > hi) headroom = hi;
    int out[2];
    if (pipe(out) != 0) return 1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      close(out[0]);
      dup2(out[1], 1);
      dup2(out[1], 2);
      close(out[1]);
      struct rlimit no_core = {0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      if (lib && *lib) setenv("LD_PRELOAD", lib, 1);
      char arg[32];
      snprintf(arg, sizeof arg, "%zu", from_exec ? (size_t)0 : headroom);
      if (from_exec) {
        struct rlimit rl = {base + headroom, base + headroom};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
      }
      execl("/proc/self/exe", "rlimit_as", "work", arg, (char*)NULL);
      _exit(127);
    }
    close(out[1]);
    /* The child's last line (its stdout and stderr; some allocators print a
     * line per failure, so everything is read and only the end kept). */
    char buf[512], chunk[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(out[0], chunk, sizeof chunk)) != 0) {
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (ssize_t j = 0; j < n; ++j) {
        if (len == sizeof buf - 1) {
          memmove(buf, buf + sizeof buf / 2, len - sizeof buf / 2);
          len -= sizeof buf / 2;
        }
        buf[len++] = chunk[j];
      }
    }
    while (len && buf[len - 1] == '\n') --len;
    buf[len] = '\0';
    const char* last = strrchr(buf, '\n');
    last = last ? last + 1 : buf;
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ++ran;
    printf("%-9s %s %8.1f MiB: ", name, from_exec ? "limit at exec, headroom" : "limit in main, headroom",
           (double)headroom / (1 << 20));
    if (WIFSIGNALED(status)) {
      ++killed;
      printf("KILLED by signal %d (%s): %s\n", WTERMSIG(status), strsignal(WTERMSIG(status)), last);
    } else if (WEXITSTATUS(status) == 127) {
      ++breaches;
      printf("exit 127 (did not start: the loader could not map the program under the limit): %s\n", last);
    } else if (WEXITSTATUS(status) == 0) {
      printf("ok, %s\n", last);
    } else {
      ++breaches;
      printf("exit %d%s: %s\n", WEXITSTATUS(status),
             WEXITSTATUS(status) == 2   ? " (a failure without ENOMEM)"
             : WEXITSTATUS(status) == 3 ? " (no recovery after freeing)"
                                        : "",
             last);
    }
  }
  const char* series = from_exec ? "limit at exec" : "limit in main";
  printf("%s (%s): RLIMIT_AS children killed: %d of %d\n", name, series, killed, ran);
  printf("%s (%s): RLIMIT_AS contract breaches: %d of %d\n", name, series, breaches, ran);
  return killed == 0 && breaches == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc >= 3 && strcmp(argv[1], "work") == 0) return work((size_t)strtoull(argv[2], NULL, 10));
  if (argc >= 2 && strcmp(argv[1], "probe") == 0) {
    char line[32];
    int n = snprintf(line, sizeof line, "%zu\n", vm_size());
    return n > 0 && write(1, line, (size_t)n) == n ? 0 : 1;
  }
  if (argc >= 2 && strcmp(argv[1], "drive") == 0) {
    const char* lib = NULL;
    const char* name = NULL;
    int limits = 20, from_exec = 0;
    for (int i = 2; i < argc; ++i) {
      if (strcmp(argv[i], "--from-exec") == 0)
        from_exec = 1;
      else if (i + 1 < argc && strcmp(argv[i], "--lib") == 0)
        lib = argv[++i];
      else if (i + 1 < argc && strcmp(argv[i], "--limits") == 0)
        limits = atoi(argv[++i]);
      else if (i + 1 < argc && strcmp(argv[i], "--name") == 0)
        name = argv[++i];
    }
    if (limits < 1) limits = 1;
    return drive(lib, limits, name ? name : lib ? lib : "glibc", from_exec);
  }
  fprintf(stderr, "usage: %s drive [--lib PATH] [--limits N] [--name NAME] [--from-exec] | work HEADROOM | probe\n",
          argv[0]);
  return 64;
}

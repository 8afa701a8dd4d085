/* fork_child_speed.c — does a child forked from a busy threaded parent
 * allocate at full speed?
 *
 *   fork_child_speed fresh    runs the workload in this (single-threaded) process
 *   fork_child_speed forked   starts 16 threads that allocate and free (their
 *                             thread caches fill up to their budget), forks while
 *                             they run, and runs the workload in the child
 *
 * The workload: 2M malloc+free pairs, in rounds of 256 blocks of 512..1520
 * bytes (about 256 KiB) allocated and then freed. It prints one line:
 *   fork_child_speed: <mode> ms=<wall> acquisitions=<n> caches=<n>
 * where acquisitions is the growth of ammalloc's central-lock acquisitions
 * over the workload and caches its thread-cache count afterwards (both -1
 * when the preloaded allocator is not ammalloc: am_get_numeric_property is
 * looked up with dlsym). fork_child_speed.sh compares the two modes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef int (*prop_fn)(const char*, size_t*);
static prop_fn get_prop;

static long prop(const char* name) {
  size_t v;
  if (!get_prop || get_prop(name, &v) != 1) return -1;
  return (long)v;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

enum { kPairs = 2000000, kRound = 256 };

static void* volatile sink;

static int workload(const char* mode) {
  long acq0 = prop("ammalloc.central_lock_acquisitions");
  double t0 = now_ms();
  void* v[kRound];
  for (int done = 0; done < kPairs; done += kRound) {
    for (int i = 0; i < kRound; ++i) {
      v[i] = malloc(512 + (size_t)((i * 37 + done / kRound) % 64) * 16);
      if (!v[i]) return 4;
      *(char*)v[i] = 1;
    }
    sink = v[kRound / 2];
    for (int i = 0; i < kRound; ++i) free(v[i]);
  }
  double ms = now_ms() - t0;
  long acq = acq0 < 0 ? -1 : prop("ammalloc.central_lock_acquisitions") - acq0;
  printf("fork_child_speed: %s ms=%.1f acquisitions=%ld caches=%ld\n", mode, ms, acq,
         prop("ammalloc.thread_caches"));
  fflush(stdout);
  return 0;
}

static atomic_int stop;
static atomic_int warm;

/* Bursts of 1024 blocks of one size (64 B - 4 KiB, in turn), allocated then
 * freed: the lists recycle and grow, and the threads claim all of the
 * process-wide thread-cache budget (16 threads x 2 MiB is all of the default
 * 32 MiB). */
static void* busy(void* arg) {
  enum { kBurst = 1024 };
  static _Thread_local void* v[kBurst];
  long rounds = 0;
  unsigned k = (unsigned)(uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    size_t size = 64 + (size_t)(k++ % 64) * 64;
    for (int i = 0; i < kBurst; ++i) v[i] = malloc(size);
    for (int i = 0; i < kBurst; ++i) free(v[i]);
    if (++rounds == 300) atomic_fetch_add(&warm, 1);
  }
  return NULL;
}

int main(int argc, char** argv) {
  get_prop = (prop_fn)dlsym(RTLD_DEFAULT, "am_get_numeric_property");
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "fresh") == 0) return workload("fresh");
  if (strcmp(mode, "forked") != 0) {
    fprintf(stderr, "usage: %s fresh|forked\n", argv[0]);
    return 2;
  }
  enum { kThreads = 16 };
  pthread_t t[kThreads];
  for (int i = 0; i < kThreads; ++i)
    if (pthread_create(&t[i], NULL, busy, (void*)(uintptr_t)(i + 1)) != 0) return 5;
  /* Until every thread has done 300 bursts, or 5 s (a slow allocator). */
  for (int ms = 0; atomic_load(&warm) < kThreads && ms < 5000; ++ms) usleep(1000);
  printf("fork_child_speed: parent before fork: caches=%ld\n", prop("ammalloc.thread_caches"));
  fflush(stdout);
  int go[2];
  if (pipe(go) != 0) return 5;
  pid_t pid = fork();
  if (pid < 0) return 5;
  if (pid == 0) {
    /* Timed once the parent's threads are gone: they would share the CPUs. */
    char c;
    close(go[1]);
    if (read(go[0], &c, 1) != 1) _exit(8);
    _exit(workload("forked"));
  }
  close(go[0]);
  atomic_store(&stop, 1);
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
  if (write(go[1], "x", 1) != 1) return 5;
  close(go[1]);
  int status;
  if (waitpid(pid, &status, 0) != pid) return 6;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 7;
}

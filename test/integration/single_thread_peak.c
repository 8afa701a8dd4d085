/* single_thread_peak.c — a single-threaded program makes a 64 MiB peak (large
 * buffers and small objects), frees it, and keeps allocating a little for up
 * to 3 s. The allocator must not have created a thread of its own (the kernel
 * refuses unshare(CLONE_NEWUSER) to a multi-threaded process, sandboxes
 * such as bwrap and nsjail depend on it), and, as long as the program keeps
 * allocating, the freed pages must still go back to the OS (the slow paths do
 * the scavenging while there is no thread).
 * With the argument `two`, a second thread allocates first and then waits
 * (so the program has two threads of its own; unshare is then expected to fail).
 * Prints: threads=<n from /proc/self/status> unshare=ok|<errno name>
 *         rss_fell=0|1 (heap RSS back within 16 MiB of the baseline)
 * single_thread_peak.sh checks them. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/proc_self.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void* volatile sink;
static int wait_fd[2];

static void* second(void* arg) {
  (void)arg;
  for (int i = 0; i < 1000; ++i) free(malloc(64 + (i % 16) * 64));
  char c;
  if (read(wait_fd[0], &c, 1) < 0) return NULL;
  return NULL;
}

int main(int argc, char** argv) {
  pthread_t t;
  const int two = argc > 1 && strcmp(argv[1], "two") == 0;
  if (two) {
    if (pipe(wait_fd) != 0 || pthread_create(&t, NULL, second, NULL) != 0) return 5;
    usleep(50000);
  }
  const double baseline = proc_rss_mib();
  enum { kLarge = 32, kSmall = 32768 };
  static void* large[kLarge];
  static void* small[kSmall];
  for (int i = 0; i < kLarge; ++i) { /* 32 x 1 MiB */
    large[i] = malloc(1 << 20);
    if (!large[i]) return 4;
    memset(large[i], 1, 1 << 20);
  }
  for (int i = 0; i < kSmall; ++i) { /* 32768 x 1 KiB */
    small[i] = malloc(1024);
    if (!small[i]) return 4;
    memset(small[i], 1, 1024);
  }
  const double peak = proc_rss_mib();
  for (int i = 0; i < kLarge; ++i) free(large[i]);
  for (int i = 0; i < kSmall; ++i) free(small[i]);
  /* The program goes on allocating a little (buffers of a few sizes). */
  int fell = 0;
  const double t0 = now_s();
  for (unsigned k = 0; now_s() - t0 < 3.0; ++k) {
    void* p = malloc(300000 + (k % 8) * 4096);
    void* q = malloc(64 + (k % 32) * 64);
    sink = p;
    free(p);
    free(q);
    if (proc_rss_mib() < baseline + 16) {
      fell = 1;
      break;
    }
    usleep(2000);
  }
  long threads = proc_threads();
  const char* us = "ok";
  if (unshare(CLONE_NEWUSER) != 0) us = strerrorname_np(errno);
  printf("single_thread_peak: baseline_mib=%.1f peak_mib=%.1f end_mib=%.1f after=%.2fs\n", baseline, peak,
         proc_rss_mib(), now_s() - t0);
  printf("threads=%ld unshare=%s rss_fell=%d\n", threads, us, fell);
  if (two) {
    if (write(wait_fd[1], "x", 1) != 1) return 5;
    pthread_join(t, NULL);
  }
  return 0;
}

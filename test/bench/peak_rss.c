/* peak_rss: RSS over time after a 1 GiB peak, with no allocator API call.
 *
 * A worker thread allocates 1 GiB in mixed sizes (a quarter of the objects
 * 64 KiB..4 MiB, the rest 16 B..8 KiB), touches every page, frees it all and
 * blocks; the main thread then samples RSS from /proc/self/statm (read(2) into
 * a stack buffer: it allocates nothing, so the allocator sees an idle process)
 * every 250 ms for the given number of seconds.
 * Output: one line per sample, "t=<seconds> rss_mib=<MiB>", after
 * "baseline_mib=" and "peak_mib=". Usage: peak_rss [seconds=12] [MiB=1024] */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/proc_self.h"

static size_t target;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;
static double peak;

static void* worker(void* arg) {
  (void)arg;
  size_t cap = 1 << 20, n = 0, total = 0;
  void** ptrs = malloc(cap * sizeof *ptrs);
  unsigned s = 12345;
  while (total < target && n < cap) {
    s = s * 1103515245u + 12345u;
    size_t size = (s >> 16) % 4 == 0 ? (64u << 10) + (s >> 4) % (4u << 20) : 16 + (s >> 8) % 8192;
    char* p = malloc(size);
    for (size_t off = 0; off < size; off += 4096) p[off] = 1;
    p[size - 1] = 1;
    ptrs[n++] = p;
    total += size;
  }
  peak = proc_rss_mib();
  for (size_t i = 0; i < n; ++i) free(ptrs[i]);
  free(ptrs);
  pthread_mutex_lock(&mu);
  done = 1;
  pthread_cond_signal(&cv);
  pthread_cond_wait(&cv, &mu);  /* blocks for good: never allocates again */
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 12;
  target = (size_t)(argc > 2 ? atoi(argv[2]) : 1024) << 20;
  double base = proc_rss_mib();
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_mutex_lock(&mu);
  while (!done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  printf("baseline_mib=%.1f\npeak_mib=%.1f\n", base, peak);
  fflush(stdout);
  struct timespec quarter = {0, 250000000};
  for (int i = 0; i <= seconds * 4; ++i) {
    printf("t=%.2f rss_mib=%.1f\n", i / 4.0, proc_rss_mib());
    fflush(stdout);
    nanosleep(&quarter, NULL);
  }
  return 0;  /* exit with the worker still blocked */
}

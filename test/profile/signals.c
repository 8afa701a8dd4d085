/* signals: AMMALLOC_STATS_SIGNAL / AMMALLOC_HEAP_PROFILE_SIGNAL
 * (test/profile/signals.sh). Sends itself the two signals while idle, then
 * aims many at a thread that allocates and frees without pause, so that some
 * land inside the allocator (those are deferred to the next slow path). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int g_stop;

static void* churn(void* arg) {
  (void)arg;
  void* keep[256] = {0};
  unsigned i = 0;
  while (!atomic_load(&g_stop)) {
    unsigned k = i++ % 256;
    free(keep[k]);
    keep[k] = malloc(16 + (i * 7919) % 70000);
  }
  for (int k = 0; k < 256; ++k) free(keep[k]);
  return NULL;
}

int main(int argc, char** argv) {
  int stats_sig = argc > 1 ? atoi(argv[1]) : SIGUSR2;
  int prof_sig = argc > 2 ? atoi(argv[2]) : SIGUSR1;
  void* live = malloc(1 << 20);
  memset(live, 1, 1 << 20);
  kill(getpid(), stats_sig);
  kill(getpid(), prof_sig);
  pthread_t t;
  pthread_create(&t, NULL, churn, NULL);
  for (int n = 0; n < 200; ++n) {
    pthread_kill(t, (n & 1) ? prof_sig : stats_sig);
    usleep(1000);
  }
  atomic_store(&g_stop, 1);
  pthread_join(t, NULL);
  free(live);
  printf("signals: done\n");
  return 0;
}

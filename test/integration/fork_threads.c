/* fork_threads.c — fork() while other threads are inside the allocator.
 *
 * WORKERS threads run malloc/calloc/realloc/free of mixed sizes (16 B..300 KiB)
 * without pause. Meanwhile main forks FORKS times; each child allocates and frees
 * a few thousand objects on its only thread, then from a thread it creates, and
 * _exit(0)s. The parent waits for each child and requires exit status 0.
 *
 * A deadlock in the child (a lock held by a worker at fork time and never
 * released) shows as a child killed by SIGALRM (the child arms alarm(CHILD_SECS)),
 * reported with its number; a deadlock in the parent is caught by the runner's
 * timeout. Exit 0 on success, 1 with a message otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 4, FORKS = 200, CHILD_OBJECTS = 3000, SLOTS = 128, CHILD_SECS = 20 };

static atomic_int stop;

static uint64_t rng_next(uint64_t* s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static size_t mixed_size(uint64_t* s) {
  uint64_t r = rng_next(s);
  switch (r % 16) {
    case 0: return 300 * 1024 + (size_t)((r >> 8) % 4096); /* large */
    case 1:
    case 2: return 4096 + (size_t)((r >> 8) % 60000);
    default: return 16 + (size_t)((r >> 8) % 1024);
  }
}

/* Async-signal-safe report for the child (no stdio after fork). */
static void child_fail(const char* msg) {
  (void)!write(2, "fork_threads: child: ", 21);
  (void)!write(2, msg, strlen(msg));
  (void)!write(2, "\n", 1);
  _exit(2);
}

static void* worker(void* arg) {
  uint64_t s = 0x5eed0000ULL + (uint64_t)(uintptr_t)arg;
  unsigned char* slot[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  unsigned long ops = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    unsigned k = (unsigned)(rng_next(&s) % SLOTS);
    if (!slot[k]) {
      size_t n = mixed_size(&s);
      slot[k] = (rng_next(&s) & 1) ? malloc(n) : calloc(1, n);
      if (!slot[k]) {
        fprintf(stderr, "fork_threads: worker: allocation of %zu failed\n", n);
        exit(1);
      }
      len[k] = n;
      slot[k][0] = (unsigned char)k;
      slot[k][n - 1] = (unsigned char)k;
    } else if (rng_next(&s) % 3 == 0) {
      size_t n = mixed_size(&s);
      unsigned char* r = realloc(slot[k], n);
      if (!r) {
        fprintf(stderr, "fork_threads: worker: realloc to %zu failed\n", n);
        exit(1);
      }
      if (r[0] != (unsigned char)k) {
        fprintf(stderr, "fork_threads: worker: realloc lost content\n");
        exit(1);
      }
      slot[k] = r;
      len[k] = n;
      r[n - 1] = (unsigned char)k;
    } else {
      if (slot[k][0] != (unsigned char)k || slot[k][len[k] - 1] != (unsigned char)k) {
        fprintf(stderr, "fork_threads: worker: block corrupted\n");
        exit(1);
      }
      free(slot[k]);
      slot[k] = NULL;
    }
    ops++;
  }
  for (unsigned k = 0; k < SLOTS; k++) free(slot[k]);
  return (void*)(uintptr_t)ops;
}

/* The child's workload: CHILD_OBJECTS blocks, live at once, checked, freed. */
static void child_work(uint64_t seed) {
  static unsigned char* blocks[CHILD_OBJECTS];
  static size_t sizes[CHILD_OBJECTS];
  uint64_t s = seed;
  for (int i = 0; i < CHILD_OBJECTS; i++) {
    sizes[i] = (i % 500 == 0) ? 256 * 1024 + 1 : 8 + (size_t)(rng_next(&s) % 2000);
    blocks[i] = malloc(sizes[i]);
    if (!blocks[i]) child_fail("malloc returned NULL");
    memset(blocks[i], (int)(i & 0xff), sizes[i]);
  }
  for (int i = 0; i < CHILD_OBJECTS; i += 2) {
    unsigned char* r = realloc(blocks[i], sizes[i] * 2);
    if (!r) child_fail("realloc returned NULL");
    blocks[i] = r;
  }
  for (int i = 0; i < CHILD_OBJECTS; i++) {
    if (blocks[i][0] != (unsigned char)(i & 0xff) ||
        blocks[i][sizes[i] - 1] != (unsigned char)(i & 0xff))
      child_fail("block corrupted");
    free(blocks[i]);
  }
}

static void* child_thread(void* arg) {
  child_work((uint64_t)(uintptr_t)arg);
  return NULL;
}

int main(void) {
  pthread_t th[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if (pthread_create(&th[i], NULL, worker, (void*)(uintptr_t)(i + 1)) != 0) {
      fprintf(stderr, "fork_threads: pthread_create failed\n");
      return 1;
    }
  /* let the workers get going before the first fork */
  usleep(20 * 1000);

  int failures = 0;
  for (int f = 0; f < FORKS; f++) {
    /* the parent allocates around fork too */
    void* before = malloc(100 + (size_t)f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork_threads: fork");
      return 1;
    }
    if (pid == 0) {
      alarm(CHILD_SECS);
      free(before); /* a block allocated before the fork, freed in the child */
      child_work(0xc0ffeeULL + (uint64_t)f);
      pthread_t t;
      if (pthread_create(&t, NULL, child_thread, (void*)(uintptr_t)(0xbeefULL + (uint64_t)f)) != 0)
        child_fail("pthread_create failed");
      if (pthread_join(t, NULL) != 0) child_fail("pthread_join failed");
      _exit(0);
    }
    free(before);
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (w != pid) {
      perror("fork_threads: waitpid");
      return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    failures++;
    if (WIFSIGNALED(status))
      fprintf(stderr, "fork_threads: FAIL: child %d killed by signal %d (%s)%s\n", f,
              WTERMSIG(status), strsignal(WTERMSIG(status)),
              WTERMSIG(status) == SIGALRM ? " -- deadlocked after fork?" : "");
    else
      fprintf(stderr, "fork_threads: FAIL: child %d exited with status %d\n", f,
              WEXITSTATUS(status));
    if (failures >= 5) break;
  }

  atomic_store(&stop, 1);
  unsigned long ops = 0;
  for (int i = 0; i < WORKERS; i++) {
    void* r;
    pthread_join(th[i], &r);
    ops += (unsigned long)(uintptr_t)r;
  }
  if (failures) {
    fprintf(stderr, "fork_threads: %d child(ren) failed\n", failures);
    return 1;
  }
  printf("fork_threads: OK: %d forks while workers did %lu allocator operations\n", FORKS, ops);
  return 0;
}

/* fork_stdio.c: fork() never deadlocks with stdio in play (glibc's
 * tst-malloc-fork-deadlock pattern).
 *
 * glibc's fork() runs the atfork prepare handlers first and takes the stdio
 * list lock after them. If the allocator's prepare handler took its locks
 * first, this cycle hangs fork: a thread holds a FILE lock and waits in malloc
 * for an allocator lock (the forking thread has it); another runs fflush(NULL)
 * holding the list lock and waits for that FILE; the forking thread waits for
 * the list lock.
 *
 * HOLDERS threads loop: lock their FILE, malloc and free, unlock; one thread
 * loops on fflush(NULL); main forks for SECONDS (argv[1], default 15); each
 * child allocates, writes to a FILE and _exit(0)s. A watchdog fails the run
 * when no fork completes for STALL_SECS. Exit 0 on success. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { HOLDERS = 8, STALL_SECS = 10, CHILD_SECS = 10 };

static atomic_int stop;
static atomic_long forks_done;
static FILE* files[HOLDERS];

static void* holder(void* arg) {
  FILE* f = files[(long)arg];
  unsigned seed = (unsigned)(long)arg * 7919u + 1;
  while (!atomic_load(&stop)) {
    flockfile(f);
    /* Large: every one takes the page-heap lock, where fork can catch it. */
    for (int i = 0; i < 4; ++i) free(malloc(300000 + rand_r(&seed) % 700000));
    funlockfile(f);
    /* Let fflush(NULL) have the FILE now and then: glibc's FILE locks are not
     * fair, and a holder that takes its lock back at once starves the flusher
     * (and with it fork, which waits for the list lock), whatever the malloc. */
    sched_yield();
  }
  return NULL;
}

static void* flusher(void* arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

static void* watchdog(void* arg) {
  (void)arg;
  long last = -1;
  int still = 0;
  while (!atomic_load(&stop)) {
    sleep(1);
    long now = atomic_load(&forks_done);
    still = now == last ? still + 1 : 0;
    last = now;
    if (still >= STALL_SECS) {
      static const char msg[] = "fork_stdio: FAIL: no fork completed for 10 s (deadlock)\n";
      write(2, msg, sizeof msg - 1);
      _exit(1);
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 15;
  for (int i = 0; i < HOLDERS; ++i) files[i] = fopen("/dev/null", "w");
  pthread_t t[HOLDERS + 2];
  for (long i = 0; i < HOLDERS; ++i) pthread_create(&t[i], NULL, holder, (void*)i);
  pthread_create(&t[HOLDERS], NULL, flusher, NULL);
  pthread_create(&t[HOLDERS + 1], NULL, watchdog, NULL);
  time_t end = time(NULL) + seconds;
  int failures = 0;
  while (time(NULL) < end) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); failures++; break; }
    if (pid == 0) {
      alarm(CHILD_SECS);
      void* p = malloc(100);
      fprintf(files[0], "child %p\n", p);
      fflush(files[0]);
      free(p);
      _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork_stdio: child %d ended badly (status 0x%x)\n", (int)pid, status);
      failures++;
    }
    atomic_fetch_add(&forks_done, 1);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < HOLDERS + 2; ++i) pthread_join(t[i], NULL);
  printf("fork_stdio: %ld forks in %d s, %d failures\n", atomic_load(&forks_done), seconds, failures);
  return failures == 0 ? 0 : 1;
}

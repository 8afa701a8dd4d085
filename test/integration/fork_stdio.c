/* fork_stdio.c: fork() never deadlocks with stdio in play.
 *
 * glibc's fork() runs the atfork prepare handlers first and takes the stdio
 * list lock after them. If the allocator's prepare handler took its locks
 * first, this cycle hangs fork: a reader holds its FILE lock inside getline()
 * and waits in malloc/realloc for an allocator lock (a forking thread has
 * it); another thread runs fflush(NULL), holding the list lock, and waits for
 * that FILE; the forking thread waits for the list lock.
 *
 * Threads (the pattern of glibc's own malloc fork-deadlock test): FORKERS
 * threads fork and reap children that _exit(17) at once; READERS threads
 * rewind a FILE and getline() one 50,000-byte line (so the line buffer grows
 * by realloc under the FILE lock) and free it; one thread loops on
 * fflush(NULL). Runs SECONDS (argv[1], default 15), then asks every thread
 * to stop: a deadlock is a thread that never returns, so the run fails when
 * they have not all stopped STOP_SECS later. (Progress while running is no
 * criterion: with 13 threads on 2 cores the FILE locks, which are not fair,
 * can starve fflush(NULL) and with it fork for seconds under any malloc.)
 * Exit 0 on success. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { FORKERS = 4, READERS = 8, LINE = 50000, STOP_SECS = 30 };

static atomic_int stop;
static atomic_long forks_done;
static atomic_int failures;
static char path[] = "/tmp/ammalloc-fork-stdio-XXXXXX";

static void* forker(void* arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); atomic_fetch_add(&failures, 1); return NULL; }
    if (pid == 0) _exit(17);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 17) {
      fprintf(stderr, "fork_stdio: child %d ended badly (status 0x%x)\n", (int)pid, status);
      atomic_fetch_add(&failures, 1);
    }
    atomic_fetch_add(&forks_done, 1);
  }
  return NULL;
}

static void* reader(void* arg) {
  (void)arg;
  FILE* f = fopen(path, "r");
  if (f == NULL) { perror("fopen"); atomic_fetch_add(&failures, 1); return NULL; }
  while (!atomic_load(&stop)) {
    rewind(f);
    char* line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) != LINE + 1) atomic_fetch_add(&failures, 1);
    free(line);
  }
  fclose(f);
  return NULL;
}

static void* flusher(void* arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 15;
  int fd = mkstemp(path);
  FILE* w = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (w == NULL) { perror("mkstemp"); return 1; }
  for (int i = 0; i < LINE; ++i) fputc('x', w);
  fputc('\n', w);
  fclose(w);

  pthread_t t[FORKERS + READERS + 1];
  int n = 0;
  for (int i = 0; i < FORKERS; ++i) pthread_create(&t[n++], NULL, forker, NULL);
  for (int i = 0; i < READERS; ++i) pthread_create(&t[n++], NULL, reader, NULL);
  pthread_create(&t[n++], NULL, flusher, NULL);

  sleep(seconds);
  alarm(STOP_SECS);  /* default action: the process ends, the test fails */
  atomic_store(&stop, 1);
  for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
  unlink(path);
  alarm(0);
  printf("fork_stdio: %ld forks in %d s, %d failures\n", atomic_load(&forks_done), seconds,
         atomic_load(&failures));
  return atomic_load(&failures) == 0 ? 0 : 1;
}

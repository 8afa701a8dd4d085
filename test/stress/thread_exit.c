/* thread_exit.c — a process ends when its last thread ends, with ammalloc too.
 *
 *   thread_exit main-exit    main() starts 3 threads that allocate, then calls
 *                            pthread_exit(): the process must exit (status 0)
 *                            when the 3 threads are done.
 *   thread_exit fork-child   a non-main thread forks; in the child, that thread
 *                            (the child's only one) allocates and returns, which
 *                            ends the child through pthread_exit as well (this
 *                            is what Python does for a thread that forked: see
 *                            test_threading's test_main_thread_after_fork_from_
 *                            nonmain_thread). The parent waits at most 10 s.
 *
 * glibc ends the process when the last thread exits. A helper thread that the
 * allocator starts on its own (a background scavenger/GC thread, detached,
 * looping forever, with every signal blocked) keeps the process alive instead:
 * the leader shows as <defunct>, waitpid() never returns, and even SIGTERM stays
 * pending, since the only live thread blocks it.
 *
 * Run it under `timeout -s KILL` (test/stress/meson.build: 30 s). Exit 0 pass,
 * 1 fail. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Enough work of every kind (small, large, freed pages) that a lazily started
 * helper thread would be running by the end. */
static void churn(void) {
  void* big[32];
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 2000; ++i) free(malloc((size_t)(i % 300) * 16 + 1));
    for (int i = 0; i < 32; ++i) big[i] = malloc((size_t)1 << 20);
    for (int i = 0; i < 32; ++i) free(big[i]);
  }
}

static void* worker(void* arg) {
  (void)arg;
  churn();
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL); /* the helper's intervals run out meanwhile */
  churn();
  return NULL;
}

static void* forker(void* arg) {
  (void)arg;
  churn();
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    churn(); /* in the child: this thread is the only one, and it returns */
    return NULL;
  }
  for (int waited = 0; waited < 10000; waited += 10) {
    int status;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("thread_exit: FAIL: the child ended with status %#x\n", status);
        exit(1);
      }
      printf("thread_exit: fork-child: the child ended when its only thread returned (%d ms)\n", waited);
      exit(0);
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  printf("thread_exit: FAIL: the child's only thread returned (pthread_exit), but the child did not end in 10 s: "
         "a thread of the allocator keeps it alive\n");
  fflush(stdout);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  exit(1);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  pthread_t t[3];
  if (strcmp(mode, "main-exit") == 0) {
    churn();
    for (int i = 0; i < 3; ++i)
      if (pthread_create(&t[i], NULL, worker, NULL) != 0) return 1;
    printf("thread_exit: main-exit: main() calls pthread_exit; the process must end with its 3 threads\n");
    fflush(stdout);
    pthread_exit(NULL);
  }
  if (strcmp(mode, "fork-child") == 0) {
    if (pthread_create(&t[0], NULL, forker, NULL) != 0) return 1;
    pthread_join(t[0], NULL);
    return 1; /* forker exits the process */
  }
  fprintf(stderr, "usage: thread_exit main-exit|fork-child\n");
  return 2;
}

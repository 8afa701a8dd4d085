// Tests of the fork module (lib/front/fork.cc): every lock the allocator can
// hold is taken before fork() and repaired in the child, so a child forked at
// any instant can allocate.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "ammalloc/ammalloc.h"
#include "heap/page_heap.h"
#include "heap/thread_cache.h"

using namespace am;

namespace {

// Forks; the child runs f with a 10 s alarm and exits 0 if f returns.
template <typename F>
int fork_and_wait(F f) {
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGALRM, SIG_DFL);
    alarm(10);
    f();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

TEST_CASE("fork: a child forked while another thread holds the forker's cache lock can allocate",
          "[fork]") {
  // A GC pass holds the cache's gc_lock of the thread it revokes. If that
  // thread forks meanwhile, the child must not inherit the lock taken.
  am_free(am_malloc(64));  // this thread has an active cache; handlers installed
  ThreadCache* self = &tls_cache;
  REQUIRE(self->state == ThreadCache::kActive);
  std::atomic<bool> held{false};
  std::thread gc_like([&] {
    self->gc_lock.lock();
    held = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    self->gc_lock.unlock();
  });
  while (!held) std::this_thread::yield();
  int status = fork_and_wait([] {
    // A class this thread has not used: its list is empty, so this takes the
    // thread cache's slow path, which takes gc_lock.
    void* p = am_malloc(200000);
    if (p == nullptr) _exit(2);
    am_free(p);
  });
  gc_like.join();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) != SIGALRM);
}

TEST_CASE("fork: runs a scavenger pass was releasing at the instant of the fork go back in the child",
          "[fork]") {
  // A release pass takes runs out of the free sets (kReleasing) and madvises
  // them without the page-heap lock. A fork in that window used to leave them
  // in no set in the child: lost for good (releasing_bytes stayed non-zero).
  std::atomic<bool> stop{false};
  std::thread releaser([&] {
    void* v[32];
    while (!stop.load(std::memory_order_relaxed)) {
      for (void*& p : v) {
        p = am_malloc(512 * 1024);
        memset(p, 1, 4096);
      }
      for (void* p : v) am_free(p);
      am_release_free_memory();
    }
  });
  int lost = 0, forks = 0;
  for (; forks < 300 && lost == 0; ++forks) {
    int status = fork_and_wait([] {
      if (page_heap_stats().releasing_bytes != 0) _exit(3);
      void* p = am_malloc(1 << 20);  // the page heap works
      if (p == nullptr) _exit(2);
      am_free(p);
    });
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 3) ++lost;
    CHECK(WEXITSTATUS(status) != 2);
  }
  stop = true;
  releaser.join();
  INFO("children that found runs in flight: " << lost << " of " << forks);
  CHECK(lost == 0);
}

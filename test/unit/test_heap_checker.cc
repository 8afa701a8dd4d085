// Heap leak checker (lib/observe/heap_checker.h): a dropped pointer is a leak; blocks
// reachable from a global (directly, through another block, through an
// interior pointer) are not; a leaked cycle is two leaks; the report and the
// leak profile. Each case runs in a forked child: the checker turns bypass mode
// on for good, and its scan covers the whole process.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ammalloc/ammalloc.h"
#include "observe/heap_checker.h"

namespace {

void* volatile g_cache;      // a still-reachable "global cache"
char* volatile g_interior;   // points into the middle of a block

struct Result {
  size_t bytes = 0, objects = 0;
  int status = -1;
  std::string err;
};

// Runs body() in a child with the checker on; the child reports the check's
// figures through a pipe, its stderr is captured.
template <typename F>
Result in_child(F body, bool print = false) {
  int out[2], err[2];
  REQUIRE(pipe(out) == 0);
  REQUIRE(pipe(err) == 0);
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(err[1], 2);
    am::heap_checker_start();
    body();
    size_t objects = 0;
    size_t bytes = am_heap_leak_check(&objects, print);
    size_t r[2] = {bytes, objects};
    if (write(out[1], r, sizeof r) != sizeof r) _exit(3);
    _exit(0);
  }
  close(out[1]);
  close(err[1]);
  Result res;
  size_t r[2] = {0, 0};
  if (read(out[0], r, sizeof r) == sizeof r) {
    res.bytes = r[0];
    res.objects = r[1];
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(err[0], buf, sizeof buf)) > 0) res.err.append(buf, static_cast<size_t>(n));
  close(out[0]);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  res.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

// Overwrites the dead part of the stack below the caller, so that no stale
// copy of a dropped pointer survives there.
__attribute__((noinline)) void clobber_stack() {
  volatile char pad[64 * 1024];
  for (size_t i = 0; i < sizeof pad; ++i) pad[i] = 0;
}

__attribute__((noinline)) void leak(size_t n) {
  void* volatile p = am_malloc(n);
  memset(p, 0, n);
  p = nullptr;
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

}  // namespace

TEST_CASE("a dropped pointer is a leak; a global cache is not", "[heap_checker]") {
  if (sanitized()) {
    WARN("the whole-process scan is not run under a sanitizer (shadow memory)");
    return;
  }
  Result r = in_child([] {
    g_cache = am_malloc(4000);  // reachable
    leak(1234);
    clobber_stack();
  });
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.bytes == 1234);
  CHECK(r.objects == 1);
}

TEST_CASE("a clean program has no leaks", "[heap_checker]") {
  if (sanitized()) return;
  Result r = in_child([] {
    for (int i = 0; i < 1000; ++i) am_free(am_malloc(16 + i));
    void* p = am_calloc(10, 100);
    p = am_realloc(p, 100000);
    am_free(p);
    g_cache = am_malloc(77);
  }, true);
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.bytes == 0);
  CHECK(r.objects == 0);
  CHECK(r.err.find("leak check") == std::string::npos);  // prints nothing
}

TEST_CASE("reachability through blocks and interior pointers", "[heap_checker]") {
  if (sanitized()) return;
  Result r = in_child([] {
    // global -> a -> b -> c: all reachable.
    void** a = static_cast<void**>(am_malloc(64));
    void** b = static_cast<void**>(am_malloc(5000));
    void** c = static_cast<void**>(am_malloc(300000));  // large span
    a[0] = b;
    b[100] = c;
    c[0] = nullptr;
    g_cache = a;
    // Only an interior pointer to this one.
    char* d = static_cast<char*>(am_malloc(1000));
    g_interior = d + 500;
    // A cycle nobody points to: two leaks.
    void** x = static_cast<void**>(am_malloc(48));
    void** y = static_cast<void**>(am_malloc(80));
    x[0] = y;
    y[0] = x;
    x = y = nullptr;
    clobber_stack();
  });
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.objects == 2);
  CHECK(r.bytes == 48 + 80);
}

TEST_CASE("the report names the leak and writes a profile", "[heap_checker]") {
  if (sanitized()) return;
  Result r = in_child([] {
    for (volatile int i = 0; i < 2; i = i + 1) leak(4321);  // one stack, two objects
    clobber_stack();
  }, true);
  INFO(r.err);
  CHECK(r.objects == 2);
  CHECK(r.err.find("ammalloc: leak check: 8642 bytes in 2 objects\n") != std::string::npos);
  CHECK(r.err.find("ammalloc: leak of 8642 bytes in 2 objects allocated from:\n") != std::string::npos);
  CHECK(r.err.find("    @ 0x") != std::string::npos);
  size_t at = r.err.find("leak profile written to ");
  REQUIRE(at != std::string::npos);
  std::string name = r.err.substr(at + 24, r.err.find(';', at) - at - 24);
  FILE* f = fopen(name.c_str(), "r");
  REQUIRE(f != nullptr);
  char line[256];
  REQUIRE(fgets(line, sizeof line, f));
  CHECK(std::string(line) == "heap profile:      2:     8642 [     2:     8642] @ heapprofile\n");
  fclose(f);
  unlink(name.c_str());
}

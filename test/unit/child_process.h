// Test support: run a function in a forked child and collect how it ended.
//
// Misuse tests (invalid pointers, fatal errors) must watch the process die
// with a message on stderr; a child keeps the test runner alive.
#pragma once

#include <catch2/catch.hpp>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

struct ChildResult {
  int status = 0;
  std::string err;  // everything the child wrote to stderr
  bool aborted() const { return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT; }
  bool exited_ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  std::string describe() const {
    if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status)) + ", stderr: " + err;
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + ", stderr: " + err;
    return "status " + std::to_string(status);
  }
};

// Reads the child's output from fd until EOF, closes fd, waits for the child.
inline std::string drain_and_reap(int fd, pid_t pid, int* status) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  REQUIRE(waitpid(pid, status, 0) == pid);
  return out;
}

// Runs f in a forked child with stderr captured. The child exits 0 if f returns.
template <typename F>
inline ChildResult run_in_child(F f) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    // Catch2 (and sanitizers) install handlers for these; the parent wants to
    // see the raw signal.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE}) signal(sig, SIG_DFL);
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    f();
    _exit(0);
  }
  close(fds[1]);
  ChildResult r;
  r.err = drain_and_reap(fds[0], pid, &r.status);
  return r;
}

#include <initializer_list>
#include <utility>
#include <vector>

// Output (stdout and stderr) and status of this test binary run again on one
// test case, usually a hidden one, in a fresh process: for behaviour fixed at
// start-up (options read once at init, THP, NUMA).
struct SelfRun {
  int status = -1;
  std::string out;
};

// Unsets `clear`, sets `env`, and runs the test case `name` of this binary.
inline SelfRun run_self(const char* name, std::initializer_list<const char*> clear,
                        const std::vector<std::pair<const char*, const char*>>& env) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[1]);
    for (const char* k : clear) unsetenv(k);
    for (auto& [k, v] : env) setenv(k, v, 1);
    execl("/proc/self/exe", "/proc/self/exe", name, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  SelfRun r;
  r.out = drain_and_reap(fds[0], pid, &r.status);
  return r;
}

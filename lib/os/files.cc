// File and signal wrappers (see files.h).
#include "os/files.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "os/nocancel.h"

namespace am::os {

int open_write(const char* path) {
  int fd;
  do {
    fd = nocancel_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int open_append(const char* path) {
  int fd;
  do {
    fd = nocancel_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

void close_fd(int fd) {
  if (fd >= 0) nocancel_close(fd);
}

long self_exe_path(char* buf, size_t len) {
  if (len == 0) return -1;
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  if (n < 0) return -1;
  buf[n] = '\0';
  return static_cast<long>(n);
}

bool install_signal_handler(int signo, void (*handler)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;  // not SA_ONSTACK: a small alternate stack would not hold a report
  sigemptyset(&sa.sa_mask);
  return sigaction(signo, &sa, nullptr) == 0;
}

long current_dir(char* buf, size_t len) {
  if (len == 0 || getcwd(buf, len) == nullptr) return -1;
  long n = 0;
  while (buf[n]) ++n;
  return n;
}

bool signal_is_default(int signo) {
  struct sigaction old = {};
  if (sigaction(signo, nullptr, &old) != 0) return false;
  return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
}

void reraise_default(int signo) {
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(signo, &sa, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // in the handler it is blocked
  raise(signo);
}

void exit_now(int status) {
  fflush(nullptr);
  _exit(status);
}

}  // namespace am::os

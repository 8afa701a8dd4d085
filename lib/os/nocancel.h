// read, write, open, close and nanosleep without the cancellation point that
// glibc's wrappers add (private to lib/os).
//
// Why: POSIX makes those wrappers cancellation points. A thread with a
// deferred cancel pending that reached one inside the allocator (writing
// malloc_stats, a profile or a log line, reading /proc, backing off on a lock)
// would unwind there: the report lost, and an allocator lock that is held
// never released. glibc's syscall(2) is no cancellation point, so each of
// these is the raw system call.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>

namespace am::os {

inline ssize_t nocancel_read(int fd, void* buf, size_t len) { return syscall(SYS_read, fd, buf, len); }
inline ssize_t nocancel_write(int fd, const void* buf, size_t len) { return syscall(SYS_write, fd, buf, len); }
inline int nocancel_open(const char* path, int flags, int mode) {
  return static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}
inline int nocancel_close(int fd) { return static_cast<int>(syscall(SYS_close, fd)); }
inline int nocancel_nanosleep(const timespec* req, timespec* rem) {
  return static_cast<int>(syscall(SYS_nanosleep, req, rem));
}

}  // namespace am::os

/* proc_self.h — the test programs' readers of /proc/self (C, header only).
 * Each reads with open/read/close into a stack buffer: no allocation, so the
 * allocator under test sees nothing of the measurement. */
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Resident set in MiB (/proc/self/statm), or -1. */
static inline double proc_rss_mib(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  long pages = 0;
  sscanf(buf, "%*d %ld", &pages);
  return pages * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

/* Threads of the process ("Threads:" of /proc/self/status), or -1. */
static inline long proc_threads(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* t = strstr(buf, "\nThreads:");
  return t ? strtol(t + 9, NULL, 10) : -1;
}

// The OS boundary: the only place in ammalloc that calls mmap, munmap, madvise,
// syscalls, getenv or writes to a file descriptor. A test (test/unit/test_layout)
// checks that no other file includes <sys/mman.h> or calls syscall().
//
// Every function here is allocation-free and safe to call before libc has
// finished initialising (they are thin wrappers over system calls).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/attributes.h"

namespace am::os {

// Reserves and commits `size` bytes of zeroed anonymous memory aligned to
// `alignment` (a power of two >= the OS page size). Returns nullptr on failure.
void* map_aligned(size_t size, size_t alignment);
void unmap(void* p, size_t size);
// Gives the pages back to the OS; they read as zero when next touched.
// Returns false if the kernel refused.
bool release(void* p, size_t size);
// Asks for transparent huge pages on the range (madvise MADV_HUGEPAGE).
bool advise_hugepage(void* p, size_t size);

// write(2) until everything is written or an error other than EINTR occurs.
void write_all(int fd, const char* data, size_t len);
AM_NORETURN void abort_process();
void yield_cpu();
uint64_t now_ns();  // CLOCK_MONOTONIC
int thread_id();
int process_id();
long system_page_size();

// Sleeps for ns nanoseconds (restarting after signals).
void sleep_ns(uint64_t ns);

// Asymmetric fences: after membarrier() returns, every other running thread of
// the process has executed a full memory barrier. membarrier_init() registers
// the process (MEMBARRIER_CMD_PRIVATE_EXPEDITED, falling back to the slower
// MEMBARRIER_CMD_GLOBAL); false if neither is available.
bool membarrier_init();
void membarrier();

// Environment lookup that never allocates; nullptr if unset.
const char* get_env(const char* name);

// Reads up to len-1 bytes of a /proc file into buf, NUL-terminated; returns the
// byte count or -1. Open/read/close only: no stdio.
long read_small_file(const char* path, char* buf, size_t len);
// Resident set size of this process in bytes, from /proc/self/statm.
size_t resident_bytes();

}  // namespace am::os

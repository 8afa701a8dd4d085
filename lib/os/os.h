// The OS boundary: the only place in ammalloc that calls mmap, munmap, madvise,
// syscalls, getenv or writes to a file descriptor. A test (test/unit/test_layout)
// checks that no other file includes <sys/mman.h> or calls syscall().
//
// Every function here is allocation-free and safe to call before libc has
// finished initialising (they are thin wrappers over system calls).
#pragma once

#include <cstddef>
#include <cstdint>

// The /proc readers (read_small_file, resident_bytes, only_live_thread, maps,
// smaps, status) live in os/proc.h, included here for the callers of those
// that predate it.
#include "os/proc.h"


namespace am::os {

// Reserves and commits `size` bytes of zeroed anonymous memory aligned to
// `alignment` (a power of two >= the OS page size). Returns nullptr on failure.
void* map_aligned(size_t size, size_t alignment);
void unmap(void* p, size_t size);
// Gives the pages back to the OS; they read as zero when next touched.
// Returns false if the kernel refused.
bool release(void* p, size_t size);
// Asks for transparent huge pages on the range (madvise MADV_HUGEPAGE), or
// asks the kernel never to use them there (MADV_NOHUGEPAGE).
bool advise_hugepage(void* p, size_t size);
bool advise_nohugepage(void* p, size_t size);
// Makes the range inaccessible (a guard: any access faults) or read-write again
// (mprotect). False if the kernel refused (e.g. the process's map count limit).
bool protect(void* p, size_t size, bool accessible);

// Address space reserved, then committed (heap/system_alloc.h): reserve()
// maps `size` bytes inaccessible (PROT_NONE, MAP_NORESERVE: no memory, no
// commit charge) aligned to `alignment`; at exactly `at` if at != 0 (never
// replacing a mapping: MAP_FIXED_NOREPLACE; nullptr if the range is taken).
// commit() makes a reserved range read-write (zero when touched); false if
// the kernel refused (e.g. overcommit mode 2 out of commit charge).
void* reserve(size_t size, size_t alignment, uintptr_t at = 0);
bool commit(void* p, size_t size);

// Fault injection, for tests (internal: hidden like every am::os name, never
// exported from the shared libraries). The calls that ask the kernel for
// memory of the kinds given (map_aligned: metadata and the leak checker's
// tables; reserve and commit: the heap) are counted from the moment this is
// called: the nth of them (1: the next) and the count - 1 after it fail as
// if the kernel had refused (errno ENOMEM, nothing mapped); count ~0: every
// one from the nth on. inject_map_failures(0, 0) disarms. They are slow-path
// calls already; unarmed, the check is one relaxed load before the syscall.
enum MapCallKind : unsigned { kMapAlignedCall = 1, kReserveCall = 2, kCommitCall = 4, kAnyMapCall = 7 };
void inject_map_failures(uint64_t nth, uint64_t count, unsigned kinds = kAnyMapCall);
// Since the last inject_map_failures: the memory calls of the armed kinds
// made (failed ones included) and how many of them were failed on purpose.
uint64_t injected_map_calls();
uint64_t injected_map_failures();

// Lightweight guard regions (madvise MADV_GUARD_INSTALL / MADV_GUARD_REMOVE,
// Linux 6.13+; values of the kernel's uapi, kept here so the build does not
// depend on its headers): any access to the range faults, and the mapping is
// not split. 0, or -errno (-EINVAL: the kernel does not have them).
inline constexpr int kMadvGuardInstall = 102, kMadvGuardRemove = 103;
int guard_install(void* p, size_t size);
int guard_remove(void* p, size_t size);

// The most memory this process could ever be given: physical RAM plus swap
// (sysinfo), and no more than RLIMIT_AS allows (getrlimit). Read each call.
size_t memory_ceiling();

// NUMA system calls, raw (no libnuma: these run under the page-heap lock and
// libnuma's wrappers are not promised to stay allocation-free). Values of the
// kernel's <linux/mempolicy.h>, kept here so the build does not depend on it.
inline constexpr int kMpolDefault = 0, kMpolPreferred = 1, kMpolBind = 2, kMpolInterleave = 3;
inline constexpr unsigned long kMpolFNode = 1, kMpolFAddr = 2;
// mbind(2): 0 or -errno. maxnode counts bits of nodemask (the kernel's
// off-by-one is handled here).
long mbind(void* p, size_t size, int mode, const unsigned long* nodemask, unsigned long maxnode);
// get_mempolicy(2): 0 or -errno.
long get_mempolicy(int* mode, unsigned long* nodemask, unsigned long maxnode, const void* addr,
                   unsigned long flags);
// getcpu(2): false if the call failed (then both stay untouched).
bool getcpu(unsigned* cpu, unsigned* node);

// write(2) until everything is written or an error other than EINTR occurs.
void write_all(int fd, const char* data, size_t len);
[[noreturn]] void abort_process();
void yield_cpu();
uint64_t now_ns();  // CLOCK_MONOTONIC
// CLOCK_MONOTONIC_COARSE: the time of the last timer tick, so it lags now_ns()
// by up to one tick (1-10 ms by the kernel's HZ) and never leads it. For time
// stamps that only decide ages of a second or more (when a span was freed):
// it is a read of the vDSO page, 3.7 ns here, where CLOCK_MONOTONIC reads the
// TSC, 26 ns on this VM, which was half the time of a large malloc+free.
uint64_t coarse_now_ns();
int thread_id();
int process_id();
// 64 random bits from getrandom(2) (never blocks: GRND_NONBLOCK); if the
// kernel has none to give, a mix of the clock, the pid and an address.
uint64_t random_u64();
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
// The environment's i-th "NAME=value" entry, nullptr past the end (options.cc
// walks it for unknown AMMALLOC_* names). No allocation.
const char* env_entry(size_t i);

}  // namespace am::os

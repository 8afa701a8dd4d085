// Heap profiler: sampled allocations by stack, written as gperftools heap
// profiles for google-pprof.
//
// Owns: the stack table (each distinct stack stored once; the leak checker
// shares it), the buckets (one per distinct stack, never freed, so they are
// bounded by the distinct stacks and not by the sizes a stack asks for: the
// live samples' count and requested bytes, and every sample's, raw;
// google-pprof unsamples heap_v2 by each line's mean size, profile_writer.h),
// the in-use estimate, the profile files and when they are written:
//   - at exit (atexit, registered when the profiler starts),
//   - every AMMALLOC_HEAP_PROFILE_INTERVAL bytes allocated (exact: the sampler
//     counts the bytes behind each sample), by the thread taking the sample,
//   - on AMMALLOC_HEAP_PROFILE_SIGNAL (stats_signal.cc: in the handler when
//     the interrupted thread holds no allocator lock, else at the next miss),
//   - on a new peak of the estimated bytes in use that is
//     AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL above the last such profile (the
//     estimate is the sum of the live samples' unsampled weights,
//     size / (1 - exp(-size/period)) each, kept up to date at each sampled
//     allocation and free), and every AMMALLOC_HEAP_PROFILE_TIME_INTERVAL
//     seconds (checked at sampled allocations), by the thread taking the sample,
//   - on SIGTERM/SIGINT when the program had no handler of its own
//     (stats_signal.cc), before the signal's default action,
//   - from am_heap_profile_dump().
// Files: <prefix>.<pid>.<seq>.heap, seq = 0001, 0002, ... (profile_writer.h for
// the format); the line after the header, "# ammalloc <version> heap profile;
// trigger: <reason>; estimated bytes in use: <n>[; dropped samples: <n>];
// exe: <path>", names the trigger. Counts are the raw samples.
//
// A sampled object is one kLarge span (the front end's slow path): the span
// records its bucket and what its allocation added (the requested size as the
// span's unused tail, the weight less the size: span.h), so a free takes off
// exactly that, whatever the period is by then, with one locked update
// (profiler_record_free). A sample the profiler cannot record (metadata memory
// ran out) is dropped and counted; the object stays an ordinary large block.
// Dumps: under the dump lock, the rows (counts and stack pointer of each
// bucket; stacks are immutable) are copied into a snapshot buffer mapped from
// the OS and kept for the next dump, under the profiler's lock; then, without
// it, the file is opened, formatted and written. So a dump stuck in its I/O
// holds up other dumps but no sampled allocation or free.
// Locks: LockRank::kProfileDump (one dump at a time: the snapshot buffer and
// the file chunk), taken with no other allocator lock held, across the file
// I/O; inside it, LockRank::kProfile for the snapshot. kProfile is also taken
// alone (with no other allocator lock held) to record a sample; inside it
// only meta_alloc (kMeta). Stacks are captured before. fork: the fork module
// takes both first of all (profiler_lock_for_fork), so a fork waits for a dump
// in progress. Memory: the metadata arena (two 128 KiB head arrays mapped on
// first use, 64 B per bucket, 64 B + 8 B per frame per distinct stack) and the
// snapshot (40 B per bucket, mapped straight from the OS); never malloc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/attributes.h"
#include "core/span.h"

namespace am {

struct StackTrace {
  StackTrace* next;  // hash chain
  uint64_t hash;
  uint32_t depth;
  void* const* pcs() const { return reinterpret_cast<void* const*>(this + 1); }
};

// Init phase 2: starts the profiler if AMMALLOC_HEAP_PROFILE is set.
void profiler_init();
// The span s now holds a sampled object of `size` bytes (this thread's
// allocation, no lock held): captures the stack, counts it, marks the span.
// If no metadata memory is left, the sample is dropped: the span stays unmarked.
AM_NOINLINE AM_ENTRY_SECTION void profiler_record_alloc(Span* s, size_t size);
// Free of a sampled span: takes off what its allocation added, clears the mark.
void profiler_record_free(Span* s);
// The stored copy of a stack (shared, never freed); nullptr when metadata
// memory ran out.
const StackTrace* profiler_intern_stack(void* const* pcs, int depth);
bool profiler_running();
// fork module (front/fork.cc), first of every allocator lock: the dump lock
// (waiting for a dump in progress) and the profiler's lock before fork; after
// it, released (parent) or reset (child). The child needs nothing else: its
// buckets, stacks and snapshot buffer are whole (the locks were held), and
// its next profile files carry its own pid.
void profiler_lock_for_fork();
void profiler_unlock_after_fork(bool child);
// Writes a profile file now; its sequence number, or -1. reason goes to the
// stderr line and the file's comment ("exit", "interval", "inuse", "time",
// "signal", "SIGTERM", "SIGINT", "request").
int profiler_dump(const char* reason);
// The memory limit stopped an allocation (the front end calls this before the
// limit policy runs the program's callback): a profile named "memory-limit",
// at most one a second (a program at its limit hits it at every refill).
void profiler_on_memory_limit();
// Signal handler side: dumps if this thread holds no allocator lock (the dump
// lock included); false if it must be left to a later miss path.
bool profiler_dump_from_signal(const char* reason);
// The estimate of the bytes in use: the sum of the live samples' unsampled
// weights (tests, the inuse trigger).
uint64_t profiler_inuse_estimate();
// Samples dropped because metadata memory ran out.
uint64_t profiler_dropped_samples();

}  // namespace am

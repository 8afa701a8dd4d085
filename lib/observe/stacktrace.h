// Stack traces for the heap profiler and the leak checker.
//
// Owns: the call into libunwind (unw_backtrace: the cached fast tracer, falling
// back to unw_step), the per-thread re-entrancy guard, and the removal of
// ammalloc's own frames.
//
// Own frames: google-pprof drops only frames whose function is named like an
// allocator (malloc, operator new, tc_*, ...), so internal frames would show up
// as the "allocating function". Every function between an entry point and the
// capture lives in the `am_entry` section (AM_ENTRY_SECTION, base/attributes.h);
// a capture drops the frames before the first one in that section (libunwind's
// own) and then the whole run of frames in it. This holds in libammalloc.so
// (preloaded or linked) and in a test executable with the core linked in, and
// tail calls from an entry point (malloc's `jmp` to a miss path) need nothing.
//
// Allocation: none here. libunwind may allocate the first time a thread
// unwinds (its per-thread cache uses mmap; pthread_setspecific may malloc);
// such allocations re-enter ammalloc, which then neither samples them nor
// unwinds again (the guard), and no allocator lock is held during a capture.
// Locks: none of its own (libunwind's caches are per thread, see below).
#pragma once

namespace am {

// The most frames a capture keeps (AMMALLOC_PROFILE_STACK_DEPTH, default 128,
// is the depth in force; stacktrace_depth() reads it). 64 cut 27% of
// PyTorch's stacks short of _start; 256 holds the deepest seen there.
inline constexpr int kMaxStackDepth = 256;

// AMMALLOC_PROFILE_STACK_DEPTH, clamped to [1, kMaxStackDepth].
int stacktrace_depth();

// Before the first capture (init phase 2, idempotent): libunwind's caches per
// thread (static TLS), not one global cache under a mutex, so that unwinding
// threads never wait on each other and a fork() that lands while another
// thread holds that mutex cannot leave the child's unwinder locked.
void stacktrace_init();

// Return addresses of the program's frames, innermost first, at most `max`
// (<= kMaxStackDepth). 0 when re-entered on this thread.
int stacktrace_capture(void** pcs, int max);
// The same without removing anything (tests).
int stacktrace_capture_raw(void** pcs, int max);
// Whether pc lies in ammalloc's entry section.
bool stacktrace_is_internal(const void* pc);

}  // namespace am

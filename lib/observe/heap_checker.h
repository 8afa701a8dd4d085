// Heap leak checker (AMMALLOC_HEAP_CHECK=1).
//
// Owns: the live-block table (address -> requested size and allocation
// stack) and the check: a conservative mark from the roots over the live
// blocks; what stays unmarked is leaked.
//
// Recording: the checker registers itself in the hook table as an internal
// observer (hooks_add_internal, hooks.h): its post_alloc records the block
// with its requested size and allocation stack, its pre_free erases it. It
// sees every allocation and free (bypass mode; also those a malloc hook
// makes). It is switched on in init phase 2, before the program's
// first allocation is served, so every block the program can reach was seen
// (except the few allocated during phase 2 itself, libunwind's own while
// capturing a stack, and those it could not record because the OS refused
// memory for an entry chunk: all treated as unknown memory, not scanned; the
// last are counted and the report says how many).
// Out of memory at start (the head table): a warning, and the checker stays
// off. A check whose arrays are refused warns and reports nothing.
//
// Roots (all read from /proc/self/maps): every private writable mapping (data
// and bss of the loaded modules, the other threads' stacks and TLS, anonymous
// memory of the loader and libc), minus ammalloc's heap (walked span by span
// through the pagemap), minus this module's own tables; the checking thread's
// stack from its current frame up; its registers (captured on entry).
// Interior pointers count. Device and shared mappings are skipped. Other
// threads keep running: values only in their registers are missed (possible
// false leaks), stale stack words keep blocks alive (missed leaks): the usual
// limits of a conservative checker.
//
// Report (stderr): `ammalloc: leak check: N bytes in M objects`, then the
// largest stacks as return addresses with the function (ELF symbols, when the
// binary has them) and module+offset, and the google-pprof command for the
// leak profile, written as <prefix>.<pid>.leaks.heap (prefix, fixed at start:
// AMMALLOC_HEAP_PROFILE, else <working directory>/ammalloc; `heapprofile`
// type: exact counts). When the file cannot be written, a warning says so
// and no command is printed.
// At exit a leak ends the process with AMMALLOC_HEAP_CHECK_EXIT_CODE (0 keeps
// the program's own status). A clean program prints nothing.
//
// Locks: 64 stripes of LockRank::kHeapCheck (by address), each taken alone,
// with no other allocator lock held (the stack is captured and interned
// first); the check takes all of them (unchecked, like fork) only to copy the
// table. fork: the fork module takes them all after the profiler's lock and
// before every other allocator lock (heap_checker_lock_for_fork).
// Memory: entries in this module's own mappings (so the scan can exclude them),
// never malloc.
#pragma once

#include <cstddef>

namespace am {

// Init phase 2: when AMMALLOC_HEAP_CHECK is set, table, observer and atexit.
void heap_checker_init();
// The same without the option (tests): starts recording now.
void heap_checker_start();
bool heap_checker_on();
// fork module (front/fork.cc), in lock-rank order: every stripe, before fork;
// after it, released (parent) or reset (child: the forking thread is alone).
void heap_checker_lock_for_fork();
void heap_checker_unlock_after_fork(bool child);
// Runs a check now. Returns the leaked bytes, *objects the count; with print,
// the report goes to stderr and the leak profile to its file.
size_t heap_check_run(size_t* objects, bool print);

}  // namespace am

// The OS boundary, files and signals: what the heap profiler, the leak checker
// and the signal options need (os.h has memory, time and environment; proc.h
// reads /proc).
//
// Owns: the writing of profile files, the executable's path, the signal
// handlers' installation and the immediate exit.
// Invariants: every function is a thin wrapper over system calls: no
// allocation, no stdio (except exit_now's fflush), async-signal-safe unless
// noted, so profile dumps can run from a signal handler.
// Locks: none.
#pragma once

#include <cstddef>

namespace am::os {

// open(2) for writing (created or truncated, mode 0644); -1 on failure.
int open_write(const char* path);
void close_fd(int fd);
// open(2) for appending (created if missing, mode 0644); -1 on failure. For
// files several processes write to (AMMALLOC_STATS_FILE, AMMALLOC_STARTED_FILE).
int open_append(const char* path);
// readlink("/proc/self/exe"): the executable's path, NUL-terminated; its
// length, or -1.
long self_exe_path(char* buf, size_t len);
// sigaction(2) with SA_RESTART, on the thread's own stack; false if refused.
bool install_signal_handler(int signo, void (*handler)(int));
// getcwd(2) into buf; its length, or -1.
long current_dir(char* buf, size_t len);
// Whether signo's disposition is SIG_DFL (no handler installed, not ignored).
bool signal_is_default(int signo);
// From a handler: restores SIG_DFL for signo, unblocks it and raises it again,
// so the default action (termination with that signal) happens as it would
// have without the handler. Returns if the signal does not end the process.
void reraise_default(int signo);
// Ends the process now with `status`: stdio is flushed (fflush(NULL): the
// program's buffered output would be lost otherwise), no more atexit handlers
// run. Not async-signal-safe (fflush).
[[noreturn]] void exit_now(int status);

}  // namespace am::os

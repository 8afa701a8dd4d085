// The fork module: the one pthread_atfork registration of the allocator.
//
// Owns: what happens around fork(). No other file registers fork handlers; a
// module with state that fork can tear exports a lock/unlock (or repair)
// function, and this file calls them.
//
// prepare: first glibc's stdio list lock, then every allocator lock in the
//   rank order of base/spinlock.h
//   (kProfileDump, kProfile, kHeapCheck, kInit, kRegistry, the forking thread's own
//   kThreadCache, every kCentral, kPageHeap, kMeta), so that no lock is held
//   mid-update by another thread at the instant of the fork. Not the GC's
//   walk lock (kRegistryWalk): it guards no data, and a forced GC walk may
//   wait on a stopped thread for ever; the child resets it.
//   Why stdio first: glibc's fork() takes the list lock itself, but only after
//   the prepare handlers ran. Were the allocator's locks taken first, a thread
//   holding a FILE lock could wait in malloc for them while another thread,
//   inside fflush(NULL), holds the list lock and waits for that FILE: fork
//   would then wait for the list lock forever (test/integration/fork_stdio.c
//   hung within 20 s that way). Taking the list lock first means no thread can
//   be inside fflush(NULL) when we take our locks. The lock is recursive, so
//   glibc's own _IO_list_lock in fork() nests inside ours. Nothing in the
//   allocator takes a stdio lock (log.h writes with write(2)), so the order
//   "list lock, then allocator locks" is never reversed.
// parent: release them in reverse order (the list lock last).
// child: the forking thread is the only one left. Reset every lock (the list
//   lock with _IO_list_resetlock: glibc has reset it already when the parent
//   had threads, and an unlock would then underflow its count), keep only
//   its own thread cache in the registry (the other threads' cached objects
//   are lost to the child, as with every allocator), give the budget the
//   other threads had claimed and their cache count back (thread cache
//   unlock), put back the runs a scavenger pass was releasing (page heap
//   unlock: they are in no free set), repair the lock-free
//   transfer-cache slots a vanished thread may have half written, and let the
//   background thread start again lazily. The child allocates at full speed.
// Locks: all of them, unchecked (lock_unchecked / reset_in_child), for the
// duration of fork() only.
#include "front/fork.h"

#include <pthread.h>

#include "core/meta_arena.h"
#include "front/init.h"
#include "heap/central_cache.h"
#include "heap/page_heap.h"
#include "heap/thread_cache.h"
#include "heap/thread_cache_registry.h"
#include "heap/transfer_cache.h"
#include "observe/heap_checker.h"
#include "observe/profiler.h"
#include "policy/background.h"

// glibc's stdio list lock (exported since GLIBC_2.2.5; see above).
extern "C" void _IO_list_lock(void);
extern "C" void _IO_list_unlock(void);
extern "C" void _IO_list_resetlock(void);

namespace am {
namespace {

void prepare() {
  _IO_list_lock();
  profiler_lock_for_fork();
  heap_checker_lock_for_fork();
  init_lock_for_fork();
  registry_lock_for_fork();
  thread_cache_lock_self_for_fork();
  central_lock_all_for_fork();
  page_heap_lock_for_fork();
  meta_lock_for_fork();
}

void release(bool child) {
  meta_unlock_after_fork(child);
  page_heap_unlock_after_fork(child);
  central_unlock_all_after_fork(child);
  thread_cache_unlock_self_after_fork(child);
  registry_unlock_after_fork(child, &tls_cache);
  init_unlock_after_fork(child);
  heap_checker_unlock_after_fork(child);
  profiler_unlock_after_fork(child);
}

void parent() {
  release(false);
  _IO_list_unlock();
}
void child() {
  release(true);
  _IO_list_resetlock();
  // Lock-free, so not taken in prepare(): repair a slot operation that a
  // vanished thread had half done (transfer_cache.cc explains why this is all).
  transfer_cache_after_fork_child();
  background_after_fork_child();
}

}  // namespace

void fork_install_handlers() { pthread_atfork(prepare, parent, child); }

}  // namespace am

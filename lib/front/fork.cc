// The fork module: the one pthread_atfork registration of the allocator.
//
// Owns: what happens around fork(). No other file registers fork handlers; a
// module with state that fork can tear exports a lock/unlock (or repair)
// function, and this file calls them.
//
// prepare: take every allocator lock in the rank order of base/spinlock.h
//   (kProfile, kHeapCheck, kInit, kRegistry, the forking thread's own
//   kThreadCache, every kCentral, kPageHeap, kMeta), so that no lock is held
//   mid-update by another thread at the instant of the fork.
// parent: release them in reverse order.
// child: the forking thread is the only one left. Reset every lock, keep only
//   its own thread cache in the registry (the other threads' cached objects
//   are lost to the child, as with every allocator), repair the lock-free
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
#include "policy/background.h"

namespace am {
namespace {

void prepare() {
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
}

void parent() { release(false); }
void child() {
  release(true);
  // Lock-free, so not taken in prepare(): repair a slot operation that a
  // vanished thread had half done (transfer_cache.cc explains why this is all).
  transfer_cache_after_fork_child();
  background_after_fork_child();
}

}  // namespace

void fork_install_handlers() { pthread_atfork(prepare, parent, child); }

}  // namespace am

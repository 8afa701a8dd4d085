// fork() safety.
//
// prepare: take every allocator lock in rank order (init, registry, every
// central list, page heap, metadata), so no lock is held mid-update by another
// thread at the instant of the fork. parent: release them. child: the forking
// thread is the only one left; reset the locks and keep only its own thread
// cache in the registry (the other threads' cached objects are lost to the
// child, as with every allocator). The transfer cache takes no lock; the child
// checks its rings instead. The child allocates normally afterwards.
#include "front/fork.h"
#include "front/init.h"

#include <pthread.h>

#include "policy/background.h"
#include "heap/central_cache.h"
#include "core/meta_arena.h"
#include "heap/page_heap.h"
#include "heap/thread_cache.h"
#include "heap/thread_cache_registry.h"
#include "heap/transfer_cache.h"

namespace am {
namespace {

void prepare() {
  init_lock_for_fork();
  registry_lock_for_fork();
  central_lock_all_for_fork();
  page_heap_lock_for_fork();
  meta_lock_for_fork();
}

void release(bool child) {
  meta_unlock_after_fork(child);
  page_heap_unlock_after_fork(child);
  central_unlock_all_after_fork(child);
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

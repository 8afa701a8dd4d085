// ThreadCacheRegistry implementation (see thread_cache_registry.h).
#include "heap/thread_cache_registry.h"

#include "base/intrusive_list.h"
#include "base/spinlock.h"

namespace am {
namespace {
constinit SpinLock g_registry_lock{LockRank::kRegistry};
constinit IntrusiveList<ThreadCache> g_caches;
constinit SpinLock g_walk_lock{LockRank::kRegistryWalk};
// The next cache registry_visit_each will visit (under g_registry_lock): a
// removal of that cache moves it on, so the walk never steps onto a cache
// that has left the list. Caches added during a walk go to the front and are
// not visited by it (they are new, hence not idle).
constinit ThreadCache* g_walk_next = nullptr;
}  // namespace

void registry_add(ThreadCache* tc) {
  LockGuard g(g_registry_lock);
  g_caches.push_front(tc);
}

void registry_remove(ThreadCache* tc) {
  LockGuard g(g_registry_lock);
  if (g_walk_next == tc) g_walk_next = tc->list_next;
  g_caches.remove(tc);
}

void registry_for_each(void (*fn)(ThreadCache*, void*), void* arg) {
  LockGuard g(g_registry_lock);
  for (ThreadCache* tc = g_caches.front(); tc; tc = tc->list_next) fn(tc, arg);
}

void registry_visit_each(void (*fn)(ThreadCache*, void*), void* arg, bool wait) {
  LockGuard walk(g_walk_lock);
  {
    LockGuard g(g_registry_lock);
    g_walk_next = g_caches.front();
  }
  for (;;) {
    ThreadCache* tc;
    {
      LockGuard g(g_registry_lock);
      tc = g_walk_next;
      if (tc == nullptr) return;
      g_walk_next = tc->list_next;
      // Taken while the cache is surely listed (its owner's exit removes it
      // under the registry lock, then waits for this gc_lock).
      if (wait)
        tc->gc_lock.lock();
      else if (!tc->gc_lock.try_lock())
        continue;
    }
    fn(tc, arg);
    tc->gc_lock.unlock();
  }
}

size_t registry_count() {
  LockGuard g(g_registry_lock);
  return g_caches.size();
}

void registry_lock_for_fork() { g_registry_lock.lock_unchecked(); }

void registry_unlock_after_fork(bool child, ThreadCache* self) {
  if (!child) {
    g_registry_lock.unlock_unchecked();
    return;
  }
  // The other threads do not exist in the child; their cached objects are lost
  // to it (as with every allocator), but they must not be counted or walked.
  bool self_registered = self->state == ThreadCache::kActive;
  g_caches.clear();
  if (self_registered) g_caches.push_front(self);
  g_walk_next = nullptr;
  g_walk_lock.reset_in_child();  // a walk the parent's GC had in progress is gone
  g_registry_lock.reset_in_child();
}

}  // namespace am

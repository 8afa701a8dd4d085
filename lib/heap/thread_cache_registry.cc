// ThreadCacheRegistry implementation (see thread_cache_registry.h).
#include "heap/thread_cache_registry.h"

#include "base/intrusive_list.h"
#include "base/spinlock.h"

namespace am {
namespace {
constinit SpinLock g_registry_lock{LockRank::kRegistry};
constinit IntrusiveList<ThreadCache> g_caches;
}  // namespace

void registry_add(ThreadCache* tc) {
  LockGuard g(g_registry_lock);
  g_caches.push_front(tc);
}

void registry_remove(ThreadCache* tc) {
  LockGuard g(g_registry_lock);
  g_caches.remove(tc);
}

void registry_for_each(void (*fn)(ThreadCache*, void*), void* arg) {
  LockGuard g(g_registry_lock);
  for (ThreadCache* tc = g_caches.front(); tc; tc = tc->list_next) fn(tc, arg);
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
  g_registry_lock.reset_in_child();
}

}  // namespace am

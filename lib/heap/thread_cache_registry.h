// ThreadCacheRegistry: the list of every active thread cache.
//
// Owns: an intrusive list (no allocation: the records are the caches themselves,
// in each thread's static TLS block) under LockRank::kRegistry. Stats walk it;
// the GC walks it to reclaim idle caches and thread_cache_revoke_all to revoke
// every cache (heap/thread_cache_revoke.h); fork keeps only the forking
// thread's.
// Invariants: a cache is listed from its activation until its owner's exit
// (or a fork that drops it); a walk holds the lock, so a cache being removed
// waits for the walk to end before it is flushed and dies.
#pragma once

#include <cstddef>

#include "heap/thread_cache.h"

namespace am {

void registry_add(ThreadCache* tc);
void registry_remove(ThreadCache* tc);
// Calls fn(tc, arg) for every registered cache with the registry lock held.
void registry_for_each(void (*fn)(ThreadCache*, void*), void* arg);
size_t registry_count();

void registry_lock_for_fork();
// In the child, only `self` (the forking thread's cache) survives.
void registry_unlock_after_fork(bool child, ThreadCache* self);

}  // namespace am

// ThreadCacheRegistry: the list of every active thread cache.
//
// Owns: an intrusive list (no allocation: the records are the caches themselves,
// in each thread's static TLS block) under LockRank::kRegistry. Stats walk it;
// the GC walks it to reclaim idle caches and thread_cache_revoke_all to revoke
// every cache (heap/thread_cache_revoke.h); fork keeps only the forking
// thread's.
// Invariants: a cache is listed from its activation until its owner's exit
// (or a fork that drops it). registry_for_each holds the lock for the whole
// walk, so a cache being removed waits for the walk to end before it is
// flushed and dies; registry_visit_each holds it only to step to the next
// cache, and its visit holds that cache's gc_lock, which the exiting owner
// takes before its cache dies.
#pragma once

#include <cstddef>

#include "heap/thread_cache.h"

namespace am {

void registry_add(ThreadCache* tc);
void registry_remove(ThreadCache* tc);
// Calls fn(tc, arg) for every registered cache with the registry lock held.
void registry_for_each(void (*fn)(ThreadCache*, void*), void* arg);
// Calls fn(tc, arg) for every cache registered when the walk starts that is
// still registered when its turn comes, holding that cache's gc_lock and NOT
// the registry lock, so threads start and exit meanwhile (an exiting owner
// waits for its gc_lock before its cache dies). wait: take each gc_lock
// however long its owner's slow path holds it; otherwise skip a cache whose
// gc_lock is taken. One such walk at a time (LockRank::kRegistryWalk).
void registry_visit_each(void (*fn)(ThreadCache*, void*), void* arg, bool wait);
size_t registry_count();

void registry_lock_for_fork();
// In the child, only `self` (the forking thread's cache) survives.
void registry_unlock_after_fork(bool child, ThreadCache* self);

}  // namespace am

// Thread-cache revoke (see thread_cache_revoke.h for the protocol).
#include "heap/thread_cache_revoke.h"

#include <atomic>

#include "heap/thread_cache_registry.h"
#include "os/os.h"

namespace am {
namespace {

// Written by thread_cache_revoke_init, from whichever thread needs it first
// (the background thread's start, or a slow path's inline round racing with
// it: TSan saw that race); a second registration is harmless. Read without a
// lock.
constinit std::atomic<bool> g_have_membarrier{false};

// G3: the owner is outside the fast path (seq even).
bool owner_outside_fast_path(ThreadCache* tc, RevokeWait wait) {
  for (int i = 0; wait == RevokeWait::kForever || i < kRevokeWaitTries; ++i) {
    if ((__atomic_load_n(&tc->seq, __ATOMIC_SEQ_CST) & 1) == 0) return true;
    os::yield_cpu();
  }
  return false;
}

// Bypass mode: the cache must be off the fast path, not necessarily empty.
// G1 + G2 do that; an owner still inside one operation (seq odd after the
// brief wait: preempted, stopped by SIGSTOP or a debugger, or in a signal
// handler) finishes that one operation on its lists, which it started before
// bypass mode, and its next one finds g_empty_lists. So the wait is bounded:
// such a cache stays revoked but unflushed (its owner's slow path serves
// from its lists under gc_lock while bypass mode lasts). An unbounded wait
// here hung am_hook_add, with the registry lock held, for as long as the
// thread stayed stopped.
void revoke_one(ThreadCache* tc, void* bytes) {
  LockGuard g(tc->gc_lock);
  RevokeResult r = thread_cache_revoke(tc, RevokeWait::kBriefly);
  if (!r.revoked) __atomic_store_n(&tc->active, &g_empty_lists[0], __ATOMIC_SEQ_CST);
  *static_cast<size_t*>(bytes) += r.bytes;
}

}  // namespace

bool thread_cache_revoke_init() {
  const bool ok = os::membarrier_init();
  g_have_membarrier.store(ok, std::memory_order_release);
  return ok;
}

// membarrier's registration belongs to the parent's mm: register again (lazily).
void thread_cache_revoke_after_fork_child() { g_have_membarrier.store(false, std::memory_order_relaxed); }

bool thread_cache_revoke_available() {
  return g_have_membarrier.load(std::memory_order_acquire) || thread_cache_revoke_init();
}

RevokeResult thread_cache_revoke(ThreadCache* tc, RevokeWait wait) {
  RevokeResult r;
  FreeList* own = &tc->lists[0];
  if (tc->active != own) {
    // Already revoked: the fast path cannot reach the lists, and the owner's
    // slow path is excluded by gc_lock.
    r.revoked = true;
  } else {
    __atomic_store_n(&tc->active, &g_empty_lists[0], __ATOMIC_SEQ_CST);  // G1
    os::membarrier();                                                   // G2
    r.revoked = owner_outside_fast_path(tc, wait);                      // G3
    if (!r.revoked) __atomic_store_n(&tc->active, own, __ATOMIC_SEQ_CST);
  }
  if (r.revoked && tc->capacity_bytes != 0) {
    r.bytes = tc->cached_bytes();
    tc->flush_all();  // G4
    r.flushed = true;
  }
  return r;
}

size_t thread_cache_revoke_all() {
  if (!thread_cache_revoke_available()) return 0;
  size_t bytes = 0;
  registry_for_each(revoke_one, &bytes);
  return bytes;
}

}  // namespace am

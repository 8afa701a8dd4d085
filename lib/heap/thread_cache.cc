// ThreadCache slow paths, growth policy and lifecycle (see thread_cache.h).
#include "heap/thread_cache.h"

#include <pthread.h>

#include "heap/central_cache.h"
#include "heap/page_heap.h"
#include "core/init_state.h"
#include "core/options.h"
#include "core/free_link.h"
#include "os/os.h"
#include "heap/thread_cache_registry.h"
#include "heap/thread_cache_revoke.h"
#include "heap/transfer_cache.h"
#include "heap/work_report.h"

namespace am {

constinit thread_local ThreadCache tls_cache AM_TLS_IE;
constinit FreeList g_empty_lists[kNumClasses] = {};

namespace {

// 8192 objects: beyond that a list is a hoard, not a cache (tcmalloc's figure).
constexpr uint32_t kMaxListLength = 8192;
// Overflows in a row before a list gives back one batch of capacity.
constexpr uint8_t kMaxOverages = 3;
// Budget moves between a thread and the process in chunks, so the shared
// atomic is touched once per 64 KiB of growth, not per object.
constexpr size_t kClaimChunk = 64 * 1024;
// Trims of the lists that had no refill and no overflow: at most one per
// kTrimNs, the clock read every kTrimCheckEvery slow-path events (refills +
// overflows). A list that sits out several intervals halves each time, so a
// thread that moved on from a set of classes gives their objects back within
// about a second of slow paths, not only when the GC finds it idle (a busy
// thread whose new work fits its cache misses rarely: a count of misses alone
// would hardly ever trigger; phases.cc-style runs saw ~200 misses per thread
// per second). A trim walks 96 lists: well under a microsecond.
constexpr uint32_t kTrimCheckEvery = 32;
constexpr uint64_t kTrimNs = 100'000'000;

// ThreadCache::flags bits.
constexpr uint8_t kRecycles = 1;  // has overflowed: frees come back to this thread
constexpr uint8_t kTouched = 2;   // refilled or overflowed since the last trim

// Bytes all threads have claimed; the cap is AMMALLOC_THREAD_CACHE_TOTAL, read
// at each claim (am_option_set may change it: a lower cap stops new claims,
// what is claimed stays claimed until given back).
constinit std::atomic<size_t> g_claimed{0};
constinit std::atomic<size_t> g_live_caches{0};
constinit pthread_key_t g_exit_key = 0;
constinit bool g_have_exit_key = false;  // no key: no thread gets a cache (init.cc)

inline void set_length(FreeList& fl, uint32_t n) { fl.set_length(n); }

// Detaches the first n objects of a list into a null-terminated chain.
void* take_chain(FreeList& fl, uint32_t n) {
  void* head = fl.head;
  void* last = head;
  for (uint32_t i = 1; i < n; ++i) last = link_next(last);
  fl.head = link_next(last);
  link_set(last, nullptr);
  set_length(fl, fl.length() - n);
  return head;
}

bool activate(ThreadCache& tc) {
  if (tc.state == ThreadCache::kActive) return true;
  if (tc.state != ThreadCache::kUninit || !fully_initialized() || !g_have_exit_key) return false;
  // pthread_setspecific may allocate (keys >= 32); that allocation re-enters
  // here, sees kActivating and is served by the central cache.
  tc.state = ThreadCache::kActivating;
  pthread_setspecific(g_exit_key, &tc);
  tc.tid = os::thread_id();
  // Registered first, then the bypass test under gc_lock: bypass mode's
  // revoke_all (thread_cache_set_bypass) either visits this cache after we
  // set `active` (and revokes it), or took the registry lock before our
  // registry_add, in which case g_bypass was raised before and we see it.
  // Tested the other way round, a thread that activated while hooks were
  // being installed could keep its fast path (unobserved operations).
  registry_add(&tc);
  {
    LockGuard g(tc.gc_lock);
    if (!thread_cache_bypassed()) __atomic_store_n(&tc.active, &tc.lists[0], __ATOMIC_RELEASE);
  }
  // Reported: a second thread cache is when the GC can have work
  // (heap/work_report.h; the policy decides).
  if (g_live_caches.fetch_add(1, std::memory_order_relaxed) >= 1) report_background_work();
  tc.state = ThreadCache::kActive;
  return true;
}

// The GC pointed `active` at g_empty_lists after taking this cache's objects
// (under gc_lock, which we hold now): use our own lists again.
// In bypass mode (thread_cache_set_bypass) `active` stays at g_empty_lists.
inline void resume_after_gc(ThreadCache& tc) {
  if (tc.active != tc.lists && !thread_cache_bypassed())
    __atomic_store_n(&tc.active, &tc.lists[0], __ATOMIC_RELEASE);
}

}  // namespace

// Full batches go to the transfer cache (another thread's refill takes them
// without the central lock), the rest to the central cache.
void ThreadCache::release(uint32_t cl, uint32_t n) {
  const uint32_t batch = class_info(cl).batch;
  for (; n >= batch; n -= batch)
    transfer_insert_range(cl, take_chain(lists[cl], batch), static_cast<int>(batch));
  if (n != 0) central_insert_range(cl, take_chain(lists[cl], n), static_cast<int>(n));
}

// Straight to the central cache: a flush (thread exit, the GC, am_reset) must
// let spans go back to the page heap, not park objects in the transfer cache.
void ThreadCache::release_to_central(uint32_t cl, uint32_t n) {
  if (n == 0) return;
  central_insert_range(cl, take_chain(lists[cl], n), static_cast<int>(n));
}

bool ThreadCache::claim_budget(size_t bytes) {
  size_t want = (bytes + kClaimChunk - 1) & ~(kClaimChunk - 1);
  if (claimed_bytes + want > static_cast<size_t>(option(kOptThreadCacheMax))) return false;
  const size_t total = static_cast<size_t>(option(kOptThreadCacheTotal));
  size_t claimed = g_claimed.load(std::memory_order_relaxed);
  do {
    if (claimed + want > total) return false;
  } while (!g_claimed.compare_exchange_weak(claimed, claimed + want, std::memory_order_relaxed));
  claimed_bytes += want;
  return true;
}

void ThreadCache::shrink(uint32_t cl, uint32_t objects) {
  FreeList& fl = lists[cl];
  if (objects > fl.max_length) objects = fl.max_length;
  fl.set_max(fl.max_length - objects);
  capacity_bytes -= static_cast<size_t>(objects) * class_size(cl);
  if (fl.length() > fl.max_length) release(cl, fl.length() - fl.max_length);
}

void ThreadCache::steal_capacity(uint32_t for_cl, size_t bytes) {
  // First pass: only capacity above one batch. A list cut below its batch
  // refills with partial batches (slow start again), each one a central-lock
  // trip that the transfer cache cannot serve; a thread using many classes at
  // its budget would thrash that way (xthread's producer did: 4.4 objects per
  // central-lock acquisition). Second pass: anything, as before.
  size_t freed = 0;
  for (int pass = 0; pass < 2 && freed < bytes; ++pass) {
    for (uint32_t tries = 0; tries < kNumClasses && freed < bytes; ++tries) {
      uint32_t v = next_victim;
      next_victim = next_victim + 1 >= kNumClasses ? 1 : next_victim + 1;
      const uint32_t batch = class_info(v).batch;
      const uint32_t floor = pass == 0 ? batch : 0;
      if (v == 0 || v == for_cl || lists[v].max_length <= floor) continue;
      uint32_t objs = lists[v].max_length - floor;
      if (objs > batch) objs = batch;
      shrink(v, objs);
      freed += static_cast<size_t>(objs) * class_size(v);
    }
  }
}

bool ThreadCache::try_grow(uint32_t cl, uint32_t objects) {
  FreeList& fl = lists[cl];
  if (fl.max_length + objects > kMaxListLength) return false;
  size_t need = static_cast<size_t>(objects) * class_size(cl);
  if (capacity_bytes + need > claimed_bytes && !claim_budget(capacity_bytes + need - claimed_bytes)) {
    steal_capacity(cl, need);
    if (capacity_bytes + need > claimed_bytes) return false;
  }
  capacity_bytes += need;
  fl.set_max(fl.max_length + objects);
  return true;
}

void* ThreadCache::refill(uint32_t cl, HeapStatus* status) {
  FreeList& fl = lists[cl];
  const uint32_t batch = class_info(cl).batch;
  // Slow start up to one batch. Beyond it, room only helps a list whose frees
  // come back to this thread (it has overflowed): a list that only allocates
  // (a producer) takes one batch per refill whatever its room, and room it
  // never fills would only use up the thread's budget.
  if (fl.max_length < batch)
    try_grow(cl, 1);
  else if (flags[cl] & kRecycles)
    try_grow(cl, batch);
  uint32_t want = fl.max_length < batch ? fl.max_length : batch;
  if (want == 0) want = 1;
  // Slow start keeps a thread from taking objects it will not use out of the
  // central cache. A batch parked in the transfer cache is idle memory anyway:
  // a thread that needs the class takes it whole, with room for it, instead of
  // crawling up to a batch one central-lock trip at a time (short-lived
  // threads never got there, and the batches their parent freed sat unused).
  if (want < batch && transfer_has_batch(cl) && try_grow(cl, batch - fl.max_length)) want = batch;
  void* head;
  int got = transfer_remove_range(cl, &head, static_cast<int>(want), status);
  if (got == 0) return nullptr;
  void* obj = head;
  // The list was empty (that is why we are here), so the rest becomes the list.
  fl.head = link_next(obj);
  set_length(fl, static_cast<uint32_t>(got - 1));
  count_slow_event(cl);
  return obj;
}

void ThreadCache::overflow(void* p, uint32_t cl) {
  FreeList& fl = lists[cl];
  const uint32_t batch = class_info(cl).batch;
  flags[cl] |= kRecycles;
  count_slow_event(cl);
  if (fl.max_length < batch && try_grow(cl, 1)) {
    link_set(p, fl.head);
    fl.head = p;
    set_length(fl, fl.length() + 1);
    return;
  }
  // A batch goes first, then p joins the list: p stays the head, so that
  // freeing it again is caught (the free fast path compares with the head).
  // With no room at all (max_length 0) p goes too.
  const uint32_t n = fl.length() < batch ? fl.length() : batch;
  if (fl.max_length != 0) {
    if (n != 0) release(cl, n);
    link_set(p, fl.head);
    fl.head = p;
    set_length(fl, fl.length() + 1);
  } else {
    link_set(p, fl.head);
    fl.head = p;
    set_length(fl, fl.length() + 1);
    release(cl, fl.length());
  }
  if (fl.max_length > batch && ++overages[cl] > kMaxOverages) {
    overages[cl] = 0;
    shrink(cl, batch);
  }
}

void ThreadCache::count_slow_event(uint32_t cl) {
  flags[cl] |= kTouched;
  if (++slow_events < kTrimCheckEvery) return;
  slow_events = 0;
  const uint64_t now = os::now_ns();
  transfer_cache_decay(now);  // process-wide, at most once a second
  if (now - last_trim_ns < kTrimNs) return;
  last_trim_ns = now;
  trim();
}

// The lists with no refill and no overflow for a whole interval were neither
// emptied nor filled: whatever they hold was not needed. Half of it goes back
// (to the central cache: it is idle memory, its spans may be free) and one
// batch of room, as tcmalloc does for a list whose low-water mark stayed above
// zero. "No miss in the interval" stands in for the low-water mark, which the
// fast path would have to keep (an instruction per pop).
void ThreadCache::trim() {
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    FreeList& fl = lists[cl];
    const uint8_t f = flags[cl];
    flags[cl] = f & ~kTouched;
    if ((f & kTouched) != 0 || fl.max_length == 0) continue;
    if (fl.length() != 0) release_to_central(cl, (fl.length() + 1) / 2);
    const uint32_t batch = class_info(cl).batch;
    uint32_t room = fl.max_length > batch ? fl.max_length - batch : fl.max_length / 2;
    if (room < fl.length()) room = fl.length();
    if (room < batch && fl.max_length > batch) room = batch;
    capacity_bytes -= static_cast<size_t>(fl.max_length - room) * class_size(cl);
    fl.set_max(room);
    if (room <= batch) flags[cl] &= ~kRecycles;
    overages[cl] = 0;
  }
  return_spare_budget();
}

// Budget claimed beyond the room of the lists goes back to the process, whole
// chunks only, so that other threads can grow.
void ThreadCache::return_spare_budget() {
  const size_t spare = claimed_bytes - capacity_bytes;
  const size_t give = spare / kClaimChunk * kClaimChunk;
  if (give == 0) return;
  claimed_bytes -= give;
  g_claimed.fetch_sub(give, std::memory_order_relaxed);
}

void ThreadCache::flush_all() {
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    release_to_central(cl, lists[cl].length());
    lists[cl].set_max(0);
    overages[cl] = 0;
    flags[cl] = 0;
  }
  slow_events = 0;
  capacity_bytes = 0;
  g_claimed.fetch_sub(claimed_bytes, std::memory_order_relaxed);
  claimed_bytes = 0;
}

size_t ThreadCache::cached_bytes() const {
  size_t total = 0;
  for (uint32_t cl = 1; cl < kNumClasses; ++cl)
    total += static_cast<size_t>(lists[cl].length()) * class_size(cl);
  return total;
}

void* thread_cache_alloc_slow(uint32_t cl, HeapStatus* status) {
  ThreadCache& tc = tls_cache;
  if (AM_UNLIKELY(tc.state != ThreadCache::kActive)) {
    ensure_initialized();
    if (!activate(tc)) {
      void* obj;
      return central_remove_range(cl, &obj, 1, status) ? obj : nullptr;
    }
  }
  LockGuard g(tc.gc_lock);
  resume_after_gc(tc);
  FreeList& fl = tc.lists[cl];
  if (AM_UNLIKELY(fl.head != nullptr)) {  // bypass mode: the lists are used only here
    void* obj = fl.head;
    fl.head = link_next(obj);
    set_length(fl, fl.length() - 1);
    return obj;
  }
  return tc.refill(cl, status);
}

bool thread_cache_free_slow(void* p, uint32_t cl) {
  ThreadCache& tc = tls_cache;
  if (AM_UNLIKELY(tc.state != ThreadCache::kActive)) {
    ensure_initialized();
    if (!activate(tc)) {
      link_set(p, nullptr);
      central_insert_range(cl, p, 1);
      return true;
    }
  }
  LockGuard g(tc.gc_lock);
  resume_after_gc(tc);
  FreeList& fl = tc.lists[cl];
  if (AM_UNLIKELY(fl.head == p)) return false;  // freed twice (the fast path's test)
  if (AM_UNLIKELY(fl.length() < fl.max_length)) {  // bypass mode: room left
    link_set(p, fl.head);
    fl.head = p;
    set_length(fl, fl.length() + 1);
    return true;
  }
  tc.overflow(p, cl);
  return true;
}

constinit std::atomic<int> g_bypass{0};

void thread_cache_set_bypass(bool on) {
  ensure_initialized();
  if (on) {
    // Every cache is revoked (and emptied) before this returns, so from now on
    // every allocation and free of every thread reaches the slow path.
    g_bypass.fetch_add(1, std::memory_order_acq_rel);
    thread_cache_revoke_all();
  } else {
    g_bypass.fetch_sub(1, std::memory_order_acq_rel);  // owners resume at their next slow path
  }
}

void thread_cache_flush_self() {
  ThreadCache& tc = tls_cache;
  if (tc.state != ThreadCache::kActive) return;
  LockGuard g(tc.gc_lock);
  tc.flush_all();
}


void thread_cache_set_key(unsigned key) {
  g_exit_key = key;
  g_have_exit_key = true;
}

// The forking thread's own cache: a GC pass (another thread) may hold its
// gc_lock at the instant of the fork; in the child that thread is gone and
// the lock would stay taken, so the child's first slow path would hang.
void thread_cache_lock_self_for_fork() {
  ThreadCache& tc = tls_cache;
  if (tc.state == ThreadCache::kActive) tc.gc_lock.lock_unchecked();
}
void thread_cache_unlock_self_after_fork(bool child) {
  ThreadCache& tc = tls_cache;
  const bool active = tc.state == ThreadCache::kActive;
  if (child) {
    // The forking thread is the child's only thread: the budget the other
    // threads had claimed, and their count, die with them. Left in place, the
    // child's caches found the budget taken and every operation went to the
    // central cache (954k lock acquisitions for 2M pairs after a fork from 16
    // busy threads instead of 80: test/integration/fork_child_speed).
    g_claimed.store(active ? tc.claimed_bytes : 0, std::memory_order_relaxed);
    g_live_caches.store(active ? 1 : 0, std::memory_order_relaxed);
    thread_cache_revoke_after_fork_child();
  }
  if (!active) return;
  if (child) {
    tc.gc_lock.reset_in_child();
    tc.gc_seen_seq = tc.seq;  // the GC starts afresh
    tc.gc_seen_ns = 0;
  } else {
    tc.gc_lock.unlock_unchecked();
  }
}

void thread_cache_on_thread_exit(void* arg) {
  auto* tc = static_cast<ThreadCache*>(arg);
  if (tc->state != ThreadCache::kActive) return;
  registry_remove(tc);  // waits for a GC walk in progress; then the GC cannot see us
  g_live_caches.fetch_sub(1, std::memory_order_relaxed);
  LockGuard g(tc->gc_lock);
  tc->flush_all();
  __atomic_store_n(&tc->active, &g_empty_lists[0], __ATOMIC_RELEASE);
  // Dead: every later malloc/free of this thread (other TLS destructors) takes
  // the slow path and goes to the central cache one object at a time.
  tc->state = ThreadCache::kDead;
}

namespace {
void add_cached_bytes(ThreadCache* tc, void* total) { *static_cast<size_t*>(total) += tc->cached_bytes(); }
}  // namespace

size_t thread_cache_total_bytes() {
  size_t total = 0;
  registry_for_each(add_cached_bytes, &total);
  return total;
}

size_t thread_cache_count() { return g_live_caches.load(std::memory_order_relaxed); }

}  // namespace am

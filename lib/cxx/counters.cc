// Per-thread count shards for the C++ allocators' stats (see counters.h).
//
// Owns: a static pool of kShards cache-line shards, the overflow shard, and a
// pthread key whose destructor gives a thread's shard back at thread exit.
// A thread claims a free shard on its first count (CAS on `owned`); a new owner
// keeps adding to the values it finds (counts are cumulative sums, so nothing
// has to be folded anywhere when a thread exits). With every shard taken, or
// while a thread is exiting, counts go to the overflow shard with RMWs.
// Invariant: a shard with owned == true has exactly one writer.
// No allocation: pthread_key_create and pthread_setspecific for the first 32
// keys of a process use static storage in glibc.
// Known limit: in a forked child, the shards of the parent's other threads stay
// claimed (their counts are kept); the child's threads use the rest.
#include <pthread.h>
#include <sched.h>

#include "counters.h"

namespace ammalloc::detail {
namespace {

// 512 x 64 B = 32 KiB of bss; pages are touched only as shards are claimed
// (stats() reads them all: reading untouched bss maps the shared zero page).
constexpr std::size_t kShards = 512;

constinit CountShard g_shards[kShards] = {};
constinit CountShard g_overflow = {};
constinit std::atomic<std::size_t> g_claim_hint{0};

// 0 = not created, 1 = being created, 2 = created, 3 = creation failed.
// (A hand-made once: pthread_once is not on the layout allow-list.)
constinit std::atomic<int> g_key_state{0};
pthread_key_t g_key;

// Set when this thread counts in the overflow shard for good: it is exiting (its
// pthread key destructor ran; do not claim again), or no shard was free when it
// first counted (do not rescan the pool on every count).
constinit thread_local bool tls_overflow = false;

void release_shard(void* p) noexcept {
  tls_count_shard = nullptr;
  tls_overflow = true;
  // release: the next owner's plain load+store must see our last store.
  static_cast<CountShard*>(p)->owned.store(false, std::memory_order_release);
}

bool key_ready() noexcept {
  int state = g_key_state.load(std::memory_order_acquire);
  if (state == 0 && g_key_state.compare_exchange_strong(state, 1, std::memory_order_acquire)) {
    state = pthread_key_create(&g_key, &release_shard) == 0 ? 2 : 3;
    g_key_state.store(state, std::memory_order_release);  // publishes g_key
  }
  while (state == 1) {  // another thread is creating it: microseconds
    sched_yield();
    state = g_key_state.load(std::memory_order_acquire);
  }
  return state == 2;
}

CountShard* claim_shard() noexcept {
  if (!key_ready()) return nullptr;  // no way to give it back: use the overflow shard
  const std::size_t start = g_claim_hint.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kShards; ++i) {
    CountShard* s = &g_shards[(start + i) % kShards];
    bool expected = false;
    // acquire: pairs with release_shard's release by the previous owner.
    if (!s->owned.load(std::memory_order_relaxed) &&
        s->owned.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      if (pthread_setspecific(g_key, s) != 0) {
        s->owned.store(false, std::memory_order_release);
        return nullptr;
      }
      return s;
    }
  }
  return nullptr;
}

}  // namespace

constinit thread_local CountShard* tls_count_shard = nullptr;

void count_slow(CountId id) noexcept {
  if (!tls_overflow) {
    if (CountShard* s = claim_shard()) {
      tls_count_shard = s;
      s->v[id].store(s->v[id].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
    tls_overflow = true;
  }
  g_overflow.v[id].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t count_total(CountId id) noexcept {
  std::uint64_t sum = g_overflow.v[id].load(std::memory_order_relaxed);
  for (const CountShard& s : g_shards) sum += s.v[id].load(std::memory_order_relaxed);
  return sum;
}

}  // namespace ammalloc::detail

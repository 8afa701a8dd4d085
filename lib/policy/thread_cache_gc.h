// Thread-cache GC: the policy that takes back the cached objects of idle
// threads (which caches, when); the revoke itself is the mechanism in
// heap/thread_cache_revoke.h (the protocol and why it is race-free).
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

struct GcCounters {
  size_t runs = 0;
  size_t caches_reclaimed = 0;
  size_t bytes_reclaimed = 0;
};

// False if the kernel has no membarrier(2): then only owners flush their caches.
bool thread_cache_gc_init();
// One GC pass at time now_ns: every cache whose owner ran no fast-path
// operation for at least idle_ns (or every cache, if force) is emptied into
// the central tier. Returns the bytes taken.
size_t thread_cache_gc(uint64_t now_ns, uint64_t idle_ns, bool force);
GcCounters thread_cache_gc_counters();
void thread_cache_gc_reset_counters();

}  // namespace am

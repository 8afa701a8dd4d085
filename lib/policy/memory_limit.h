// Memory limit (the seed's MemoryMonitor): what happens when an allocation
// would take the resident heap past am_set_memory_limit's bound.
//
// Owns: the recovery sequence, run with no allocator lock held:
//   1. release every free page to the OS, retry;
//   2. call the user's callback (it may free memory, e.g. evict KV-cache
//      blocks, and may itself allocate), retry once;
//   3. fail: NULL + ENOMEM (std::bad_alloc from operator new).
// Allocations made by the callback itself skip step 2 (no recursion).
#pragma once

#include <cstddef>

#include "heap/page_heap.h"

namespace am {

using LimitCallback = void (*)(void* ctx, size_t requested);
// One try of the allocation: the object or nullptr, and the heap's status.
using LimitAttempt = void* (*)(void* arg, HeapStatus* status);

void memory_limit_set(size_t bytes, LimitCallback cb, void* ctx);
// Called after attempt(arg) failed with HeapStatus::kLimit: retries it per the
// sequence above; returns its final result.
void* memory_limit_retry(size_t bytes, LimitAttempt attempt, void* arg);

}  // namespace am

// The engine memory layer of ammalloc (libammalloc_cxx), in one include:
//   MemoryMonitor  the heap's used/peak/limit and the limit's subscribers
//   KVCachePool    paged KV cache: blocks in huge-page slabs, LRU eviction
//   ExecutorMemory weights / temporaries / per-step arena, apart
//   StepArena      the per-step bump allocator on its own
//   Buffer<T>      RAII aligned array through any Allocator (FloatArray)
// See README "Engine memory layer" for an example.
#ifndef AMMALLOC_ENGINE_H
#define AMMALLOC_ENGINE_H

#include "ammalloc/allocator.h"
#include "ammalloc/buffer.h"
#include "ammalloc/executor_memory.h"
#include "ammalloc/kv_cache_pool.h"
#include "ammalloc/memory_monitor.h"
#include "ammalloc/step_arena.h"

#endif  // AMMALLOC_ENGINE_H

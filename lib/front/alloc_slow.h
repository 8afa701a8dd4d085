// Cold paths shared by the API functions and hardening (see alloc_slow.cc).
// The fast path's own ways out are declared in alloc_fast.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"
#include "core/span.h"

namespace am {

// Largest request that can be attempted (2^46 bytes; the address space is 2^47).
inline constexpr size_t kMaxRequest = size_t{1} << 46;

// A small request of class cl (size: what the program asked for) or a free of
// an object of class cl, that the calling thread's lists could not serve: the
// pending checks, the observers around it, the thread cache's slow path, and
// for an allocation the memory-limit policy. Hardening's checked paths
// (harden.cc) end here too.
void* small_alloc_miss(uint32_t cl, size_t size, am_api api);
void small_free_miss(void* p, uint32_t cl, am_api api);
// free() of what is not a small object: NULL, a large span, or an invalid
// pointer (aborts).
AM_NOINLINE AM_ENTRY_SECTION void free_slow(void* p, am_api api);
// realloc moving a large block that grows (size > 256 KiB, <= kMaxRequest):
// a large allocation with room after it to grow in place later.
void* alloc_large_growing(size_t size, am_api api);
// Large allocation reporting whether the memory is known to be zero (calloc).
AM_NOINLINE AM_ENTRY_SECTION void* alloc_large_zeroed(size_t size, size_t align, bool* zeroed, am_api api);
// The live large span that starts at p, or nullptr.
Span* large_span_of(void* p);
// Usable size of a pointer we handed out; aborts naming `function` otherwise.
size_t usable_size(void* p, const char* function);
// Aborts with "invalid pointer" naming `function`, or, when `freeing` and p is
// the start of a freed large span, "double free of".
AM_NORETURN void fatal_bad_pointer(void* p, const char* function, bool freeing = false);

}  // namespace am

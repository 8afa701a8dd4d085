// Cold paths shared by the API functions (see alloc_slow.cc).
#pragma once

#include <cstddef>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"
#include "core/span.h"

namespace am {

// Largest request that can be attempted (2^46 bytes; the address space is 2^47).
inline constexpr size_t kMaxRequest = size_t{1} << 46;

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

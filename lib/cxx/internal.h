// lib/cxx internal helpers shared by the C++ Allocator API sources.
//
// Owns: the fatal-error path (write(2) + abort, no allocation) and the cold
// throw of AllocationError. No state.
#pragma once

#include <cstddef>

#define AM_CXX_LIKELY(x) __builtin_expect(!!(x), 1)
#define AM_CXX_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace ammalloc::detail {

// Writes "ammalloc: <msg>\n" to stderr with write(2) and aborts. For usage errors
// that cannot be reported otherwise (e.g. raw_deallocate on an allocator without
// a raw deleter).
[[noreturn]] void fatal(const char* msg) noexcept;

// Kept out of line and cold so that allocate()'s fast path stays small.
[[noreturn]] __attribute__((cold, noinline)) void throw_allocation_error(std::size_t size, std::size_t alignment,
                                                                         const char* allocator_name);

}  // namespace ammalloc::detail

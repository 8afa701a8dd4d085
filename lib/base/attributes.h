// Compiler attributes used across ammalloc.
//
// Owns: the macros that control inlining, branch layout, TLS model and symbol
// visibility. Nothing here has state.
#pragma once

#define AM_ALWAYS_INLINE inline __attribute__((always_inline))
#define AM_NOINLINE __attribute__((noinline))
#define AM_COLD __attribute__((cold, noinline))
#define AM_LIKELY(x) __builtin_expect(!!(x), 1)
#define AM_UNLIKELY(x) __builtin_expect(!!(x), 0)
// Initial-exec TLS: the thread cache is reached with one %fs-relative load, never
// through __tls_get_addr (which can itself call malloc the first time).
#define AM_TLS_IE __attribute__((tls_model("initial-exec")))
// Code between the program and the heap profiler's stack capture: every entry
// point (AM_EXPORT) and every slow-path function a sampled or observed
// allocation passes through. Captured stacks drop their leading frames inside
// this section (lib/observe/stacktrace.cc), whether the library is preloaded, linked or
// built into a test; tail calls from an entry need no special case.
#define AM_ENTRY_SECTION __attribute__((section("am_entry")))
#define AM_EXPORT __attribute__((visibility("default"))) AM_ENTRY_SECTION
#define AM_NORETURN __attribute__((noreturn))

#if defined(__SANITIZE_THREAD__)
#define AM_TSAN 1
#endif

// A compiler-only barrier: the hardware side of the thread-cache protocol is
// supplied by membarrier(2) on the revoking side (heap/thread_cache_revoke.h).
#define AM_COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")

namespace am {
inline constexpr unsigned long kCacheLine = 64;
}  // namespace am

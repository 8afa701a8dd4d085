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
// through __tls_get_addr (which can itself call malloc the first time). The
// build of the core for libammalloc_core.so/.a defines AMMALLOC_TLS_DYNAMIC=1
// (meson.build, core_dyntls): there AM_TLS_IE is empty and every thread_local
// uses TLS descriptors, so that the library needs no static TLS and can be
// dlopen'ed late (a process's malloc is not ours there, so a first access that
// allocates dynamic TLS cannot recurse).
#if defined(AMMALLOC_TLS_DYNAMIC) && AMMALLOC_TLS_DYNAMIC
#define AM_TLS_IE
#else
#define AM_TLS_IE __attribute__((tls_model("initial-exec")))
#endif
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

// A thread-local object, for a function that touches it more than once (the
// fast paths, front/alloc_fast.h). With initial-exec TLS it is the object
// itself: GCC folds each access into one %fs-relative instruction. With TLS
// descriptors (AMMALLOC_TLS_DYNAMIC) GCC would compute the address again, one
// call into ld.so each time, after every compiler barrier (4 calls per
// am_malloc+am_free pair instead of 2); the empty asm makes the address a value
// it computes once and keeps in a register.
template <typename T>
AM_ALWAYS_INLINE T& tls_ref(T& object) {
#if defined(AMMALLOC_TLS_DYNAMIC) && AMMALLOC_TLS_DYNAMIC
  T* p = &object;
  __asm__("" : "+r"(p));
  return *p;
#else
  return object;
#endif
}
}  // namespace am

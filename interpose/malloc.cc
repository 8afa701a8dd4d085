// The C malloc family under its standard names: one-line forwarders only.
// Every behaviour lives in lib/ and is reachable (and tested) as am_*.
#include <malloc.h>
#include <stdlib.h>

#include "front/alloc_fast.h"
#include "ammalloc/ammalloc.h"
#include "observe/stats.h"

extern "C" {

AM_EXPORT void* malloc(size_t size) noexcept { return am::alloc_fast(size, AM_API_MALLOC); }
AM_EXPORT void free(void* ptr) noexcept { am::free_fast(ptr, AM_API_FREE); }
AM_EXPORT void cfree(void* ptr) noexcept { am::free_fast(ptr, AM_API_FREE); }
AM_EXPORT void free_sized(void* ptr, size_t size) noexcept { am_free_sized(ptr, size); }
AM_EXPORT void free_aligned_sized(void* ptr, size_t align, size_t size) noexcept {
  am_free_aligned_sized(ptr, align, size);
}
AM_EXPORT void* calloc(size_t n, size_t size) noexcept { return am_calloc(n, size); }
AM_EXPORT void* realloc(void* ptr, size_t size) noexcept { return am_realloc(ptr, size); }
AM_EXPORT void* reallocarray(void* ptr, size_t n, size_t size) noexcept { return am_reallocarray(ptr, n, size); }
AM_EXPORT void* memalign(size_t align, size_t size) noexcept { return am_memalign(align, size); }
AM_EXPORT int posix_memalign(void** out, size_t align, size_t size) noexcept {
  return am_posix_memalign(out, align, size);
}
AM_EXPORT void* aligned_alloc(size_t align, size_t size) noexcept { return am_aligned_alloc(align, size); }
AM_EXPORT void* valloc(size_t size) noexcept { return am_valloc(size); }
AM_EXPORT void* pvalloc(size_t size) noexcept { return am_pvalloc(size); }
AM_EXPORT size_t malloc_usable_size(void* ptr) noexcept { return am_malloc_usable_size(ptr); }
AM_EXPORT int malloc_trim(size_t pad) noexcept { return am_malloc_trim(pad); }
AM_EXPORT void malloc_stats(void) noexcept { am_malloc_stats(); }
AM_EXPORT int mallopt(int param, int value) noexcept { return am_mallopt(param, value); }
AM_EXPORT struct mallinfo mallinfo(void) noexcept { return am::mallinfo_legacy(); }
AM_EXPORT struct mallinfo2 mallinfo2(void) noexcept {
  struct am_mallinfo2 m = am_mallinfo2();
  return {m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd, m.usmblks, m.fsmblks, m.uordblks, m.fordblks, m.keepcost};
}

// glibc's private names, which C libraries call directly: the same functions,
// so their blocks pair with the public ones (as mimalloc and tcmalloc export).
AM_EXPORT void* __libc_malloc(size_t size) noexcept __attribute__((alias("malloc"), copy(malloc)));
AM_EXPORT void __libc_free(void* ptr) noexcept __attribute__((alias("free"), copy(free)));
AM_EXPORT void* __libc_calloc(size_t n, size_t size) noexcept __attribute__((alias("calloc"), copy(calloc)));
AM_EXPORT void* __libc_realloc(void* ptr, size_t size) noexcept __attribute__((alias("realloc"), copy(realloc)));
AM_EXPORT void* __libc_memalign(size_t align, size_t size) noexcept __attribute__((alias("memalign"), copy(memalign)));
AM_EXPORT void* __libc_valloc(size_t size) noexcept __attribute__((alias("valloc"), copy(valloc)));
AM_EXPORT void* __libc_pvalloc(size_t size) noexcept __attribute__((alias("pvalloc"), copy(pvalloc)));

}  // extern "C"

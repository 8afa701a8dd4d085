/* ammalloc public C API.
 *
 * Every entry point of the malloc family is reachable under an am_* name, so that
 * the core library (libammalloc_core, no interposition) can be used, tested and
 * benchmarked beside the system malloc in one process. libammalloc.so forwards
 * the standard names (malloc, free, operator new, ...) to these.
 *
 * All functions are thread-safe and async-signal-unsafe (like malloc), except
 * where noted. None of them allocates through the system malloc. */
#ifndef AMMALLOC_AMMALLOC_H
#define AMMALLOC_AMMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AM_API __attribute__((visibility("default")))
#else
#define AM_API
#endif

/* ---- the malloc family (glibc semantics) ---------------------------------------- */
AM_API void* am_malloc(size_t size);
AM_API void am_free(void* ptr);
/* free with the size the caller asked for (C++ sized delete, free_sized). A size
 * that does not match the block is detected and aborts. */
AM_API void am_free_sized(void* ptr, size_t size);
/* free of a block from am_memalign/am_aligned_alloc with its size and alignment. */
AM_API void am_free_aligned_sized(void* ptr, size_t alignment, size_t size);
AM_API void* am_calloc(size_t count, size_t size);
AM_API void* am_realloc(void* ptr, size_t size);
AM_API void* am_reallocarray(void* ptr, size_t count, size_t size);
AM_API void* am_memalign(size_t alignment, size_t size);
AM_API int am_posix_memalign(void** out, size_t alignment, size_t size);
AM_API void* am_aligned_alloc(size_t alignment, size_t size);
AM_API void* am_valloc(size_t size);
AM_API void* am_pvalloc(size_t size);
/* Bytes usable at ptr (>= the size asked for); 0 for NULL. */
AM_API size_t am_malloc_usable_size(void* ptr);

/* ---- C++ operator new support ---------------------------------------------------
 * am_new_* loop over std::get_new_handler() as operator new must; the throwing
 * variant throws std::bad_alloc when no handler is installed, the nothrow variant
 * returns NULL. alignment 0 means the default (16). */
AM_API void* am_new(size_t size, size_t alignment);
AM_API void* am_new_nothrow(size_t size, size_t alignment);

/* ---- memory management ---------------------------------------------------------- */
/* Return every free page to the OS now (madvise). Returns the bytes released. */
AM_API size_t am_release_free_memory(void);
/* malloc_trim: releases free memory; returns 1 if any was released. */
AM_API int am_malloc_trim(size_t pad);
/* mallopt is accepted for compatibility; returns 1. */
AM_API int am_mallopt(int param, int value);

/* Test isolation (FR-4): empties every thread cache (the caller's and, through
 * the GC protocol, every other thread's), returns all free memory to the OS,
 * and zeroes the counters (peaks, GC and scavenger work, lock counts).
 * Precondition for exact figures afterwards: no other thread allocates or
 * frees while it runs (it is safe if they do, but their objects may be cached
 * again at once). Memory in use by the application is untouched. */
AM_API void am_reset(void);
/* Empties the calling thread's cache into the shared tiers. */
AM_API void am_thread_cache_flush(void);

/* Memory limit on resident heap bytes (0 = none). When an allocation would
 * exceed it, ammalloc releases free memory, then calls callback(ctx, size) (if
 * not NULL; it may free memory and may allocate) and retries once, then fails
 * the allocation (NULL + ENOMEM; std::bad_alloc from operator new). `size` is
 * what the heap needed: the request's pages for a large block, a whole span
 * for a small one. The callback must not throw (it is called from inside the
 * allocator, which is built without exceptions). Allocations it makes itself
 * do not call it again. */
typedef void (*am_memory_limit_fn)(void* ctx, size_t requested);
AM_API void am_set_memory_limit(size_t bytes, am_memory_limit_fn callback, void* ctx);
/* Resident heap bytes now and at the peak (since start or am_reset_peak_memory). */
AM_API void am_memory_usage(size_t* current, size_t* peak);
AM_API void am_reset_peak_memory(void);

/* Options (see README "Options"). get: 1 and *value if the name is known, else 0.
 * set: 0, EINVAL (unknown or out of range) or EPERM (only read at start-up). */
AM_API int am_option_get(const char* name, long long* value);
AM_API int am_option_set(const char* name, long long value);

/* ---- statistics ----------------------------------------------------------------- */
/* Writes the human-readable report (gperftools layout) into buf (always
 * NUL-terminated when len > 0). Returns the length the full report needs,
 * excluding the NUL, like snprintf. */
AM_API size_t am_stats_text(char* buf, size_t len);
/* Writes the report to stderr (malloc_stats). */
AM_API void am_malloc_stats(void);
/* Reads a numeric property (see README, "Statistics"). Returns 1 and sets *value
 * if the name is known, 0 otherwise. */
AM_API int am_get_numeric_property(const char* name, size_t* value);

/* glibc's struct mallinfo2 layout, filled from ammalloc's figures. */
struct am_mallinfo2 {
  size_t arena;    /* bytes obtained from the OS and not released */
  size_t ordblks;  /* free spans in the page heap */
  size_t smblks;   /* 0 */
  size_t hblks;    /* large (page-heap) allocations in use */
  size_t hblkhd;   /* bytes in large allocations */
  size_t usmblks;  /* peak bytes in use */
  size_t fsmblks;  /* bytes in cache free lists */
  size_t uordblks; /* bytes in use by the application */
  size_t fordblks; /* free bytes held by ammalloc */
  size_t keepcost; /* bytes that malloc_trim could release */
};
AM_API struct am_mallinfo2 am_mallinfo2(void);

/* ---- malloc hooks ------------------------------------------------------------------
 * Callbacks before and after every allocation and free, with the pointer, the
 * size and the API the program called. Up to AM_HOOK_MAX sets at once; each call
 * runs them in the order they were added.
 *
 * Sizes: alloc hooks get the size asked for (count * size for calloc; for
 * pvalloc the page-rounded size); free hooks get the block's usable size
 * (am_malloc_usable_size). post_alloc gets NULL when the allocation failed.
 * free(NULL) and delete of NULL call no hook.
 *
 * realloc(p, n) with p != NULL and n > 0 reports exactly one free of p and one
 * alloc of the result, both tagged AM_API_REALLOC, even when the block stays in
 * place. When the block moves: the alloc of the new block comes first (both are
 * live at once), then the free of p. When it stays: the free of p first, then
 * the alloc of p, so a tracker keyed by address never sees one address live
 * twice. realloc(NULL, n) is an alloc only; realloc(p, 0) a free only (it returns
 * NULL); a failed realloc is an alloc that returned NULL (p stays live).
 * reallocarray is tagged AM_API_REALLOC, cfree AM_API_FREE, free_aligned_sized
 * AM_API_FREE_SIZED, every operator new AM_API_NEW or AM_API_NEW_ARRAY (nothrow
 * and aligned forms included; am_new/am_new_nothrow are AM_API_NEW), every
 * operator delete AM_API_DELETE or AM_API_DELETE_ARRAY (sized ones included).
 *
 * A hook may allocate and free: what it does calls no hooks (a thread-local
 * guard). Installing the first hook moves every thread onto the slow path (the
 * fast path has no hook test; this is what keeps it free when none is
 * installed), removing the last moves them back. A hook runs on the thread that
 * made the call and must be thread-safe. */
typedef enum am_api {
  AM_API_MALLOC = 0,
  AM_API_CALLOC,
  AM_API_REALLOC,
  AM_API_MEMALIGN,
  AM_API_POSIX_MEMALIGN,
  AM_API_ALIGNED_ALLOC,
  AM_API_VALLOC,
  AM_API_PVALLOC,
  AM_API_NEW,
  AM_API_NEW_ARRAY,
  AM_API_FREE,
  AM_API_FREE_SIZED,
  AM_API_DELETE,
  AM_API_DELETE_ARRAY,
  AM_API_COUNT
} am_api;

#define AM_HOOK_MAX 8

/* Every member may be NULL. ctx is passed back unchanged. */
typedef struct am_hooks {
  void (*pre_alloc)(void* ctx, size_t size, am_api api);
  void (*post_alloc)(void* ctx, void* ptr, size_t size, am_api api);
  void (*pre_free)(void* ctx, void* ptr, size_t size, am_api api);
  void (*post_free)(void* ctx, void* ptr, size_t size, am_api api);
  void* ctx;
} am_hooks;

/* Copies *hooks into the table. Returns a handle > 0, or -1 if the table is full
 * (AM_HOOK_MAX sets) or hooks is NULL. Operations that start after it returns,
 * on any thread, call the hooks. */
AM_API int am_hook_add(const am_hooks* hooks);
/* Removes a set; returns 0, or -1 for an unknown handle. When it returns, no
 * thread is inside one of that set's callbacks any more (unless it is called
 * from inside a hook, where it does not wait). */
AM_API int am_hook_remove(int handle);
/* Name of an API ("malloc", "operator new[]", ...), for printing. */
AM_API const char* am_api_name(am_api api);

/* ---- heap profiler (see README "Heap profiling") --------------------------------
 * Samples allocations at exponentially distributed byte intervals of mean
 * AMMALLOC_PROFILE_SAMPLE and writes gperftools heap profiles that google-pprof
 * reads. It runs from start-up when AMMALLOC_HEAP_PROFILE=<prefix> is set. */
/* Starts sampling (if not running). prefix names the files (NULL: keep the
 * current one, or "ammalloc" if none). Returns 0, or EINVAL when
 * AMMALLOC_PROFILE_SAMPLE is 0. */
AM_API int am_heap_profile_start(const char* prefix);
/* Stops sampling; objects sampled so far stay in the profile until freed. */
AM_API void am_heap_profile_stop(void);
/* Writes <prefix>.<pid>.<seq>.heap now. Returns the file's sequence number
 * (>= 1), or -1 if the profiler is not running or the file could not be written. */
AM_API int am_heap_profile_dump(void);
/* Formats the current profile into buf (like am_stats_text: NUL-terminated when
 * len > 0, returns the length needed). with_maps: append MAPPED_LIBRARIES. */
AM_API size_t am_heap_profile_text(char* buf, size_t len, int with_maps);

/* ---- heap leak checker (AMMALLOC_HEAP_CHECK=1) ----------------------------------
 * Runs the check now (it also runs at exit): live blocks that a conservative scan
 * from the roots cannot reach. Returns the bytes leaked and sets *objects (if not
 * NULL); prints the report to stderr when print is non-zero. Returns 0 when the
 * checker is off. */
AM_API size_t am_heap_leak_check(size_t* objects, int print);

#ifdef __cplusplus
}
#endif

#endif /* AMMALLOC_AMMALLOC_H */

// fastpath — the loop that scripts/fastpath-cost.sh runs under
// `valgrind --tool=callgrind` to count the instructions of one malloc+free
// pair.  It does a warm-up (the allocator initialises, its caches fill, lazy
// PLT bindings resolve), then N pairs of one fixed size.  The script runs it
// with N and 2N and takes (Ir(2N) - Ir(N)) / N, which cancels start-up, warm-up
// and exit costs exactly.
//   usage: fastpath N SIZE [API]
//   API: malloc (malloc+free, default) | new (operator new + delete) |
//        sized (operator new + sized delete) | none (the bare loop: its cost) |
//        am (am_malloc + am_free: only in the build with -DFASTPATH_AM_API,
//            linked with libammalloc_core.so, meson's fastpath_core) |
//        am-dlopen (am_malloc + am_free of the library named by the
//            environment variable FASTPATH_AM_LIB, loaded with dlopen after
//            start-up and called through pointers from dlsym: one instruction
//            less per call than am's PLT call)
// test/unit/fastpath_cost.sh measures the am modes too (not pinned).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#ifdef FASTPATH_AM_API
#include "ammalloc/ammalloc.h"
#endif

namespace {

void* (*g_am_malloc)(size_t) = nullptr;
void (*g_am_free)(void*) = nullptr;

// The warm-up's calls: the am modes warm up the am_* heap.
void* alloc(size_t size) { return g_am_malloc ? g_am_malloc(size) : std::malloc(size); }
void release(void* p) { g_am_malloc ? g_am_free(p) : std::free(p); }

inline void escape(void* p) { asm volatile("" : : "r"(p) : "memory"); }

template <int kApi>
__attribute__((noinline)) void loop(long n, size_t size) {
  for (long i = 0; i < n; i++) {
    if constexpr (kApi == 0) {
      void* p = std::malloc(size);
      escape(p);
      std::free(p);
    } else if constexpr (kApi == 1) {
      void* p = ::operator new(size);
      escape(p);
      ::operator delete(p);
    } else if constexpr (kApi == 2) {
      void* p = ::operator new(size);
      escape(p);
      ::operator delete(p, size);
#ifdef FASTPATH_AM_API
    } else if constexpr (kApi == 5) {
      void* p = am_malloc(size);
      escape(p);
      am_free(p);
#endif
    } else if constexpr (kApi == 4) {
      void* p = g_am_malloc(size);
      escape(p);
      g_am_free(p);
    } else {
      escape(nullptr);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s N SIZE [malloc|new|sized|none|am|am-dlopen]\n", argv[0]);
    return 2;
  }
  long n = std::atol(argv[1]);
  size_t size = std::strtoul(argv[2], nullptr, 10);
  const char* api = argc > 3 ? argv[3] : "malloc";
  int mode = !std::strcmp(api, "malloc") ? 0
           : !std::strcmp(api, "new")    ? 1
           : !std::strcmp(api, "sized")  ? 2
           : !std::strcmp(api, "none")   ? 3
           : !std::strcmp(api, "am-dlopen") ? 4
#ifdef FASTPATH_AM_API
           : !std::strcmp(api, "am")     ? 5
#endif
           : -1;
  if (mode < 0 || n < 0 || size == 0) {
    std::fprintf(stderr, "fastpath: bad arguments\n");
    return 2;
  }
  if (mode == 4) {
    const char* lib = std::getenv("FASTPATH_AM_LIB");
    void* h = lib ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (h == nullptr) {
      std::fprintf(stderr, "fastpath: am-dlopen: cannot load FASTPATH_AM_LIB: %s\n", lib ? dlerror() : "not set");
      return 2;
    }
    g_am_malloc = reinterpret_cast<void* (*)(size_t)>(dlsym(h, "am_malloc"));
    g_am_free = reinterpret_cast<void (*)(void*)>(dlsym(h, "am_free"));
    if (g_am_malloc == nullptr || g_am_free == nullptr) {
      std::fprintf(stderr, "fastpath: am-dlopen: no am_malloc/am_free in %s\n", lib);
      return 2;
    }
  }
#ifdef FASTPATH_AM_API
  if (mode == 5) {
    g_am_malloc = am_malloc;
    g_am_free = am_free;
  }
#endif
  // Warm-up: identical in both runs, so it cancels; it also touches a few other
  // sizes the way a real program would have before.
  for (int i = 0; i < 1000; i++) {
    void* p = alloc(size);
    void* q = alloc(16 + (i % 64) * 16);
    escape(p);
    escape(q);
    release(q);
    release(p);
  }
  switch (mode) {
    case 0: loop<0>(n, size); break;
    case 1: loop<1>(n, size); break;
    case 2: loop<2>(n, size); break;
    case 4: loop<4>(n, size); break;
#ifdef FASTPATH_AM_API
    case 5: loop<5>(n, size); break;
#endif
    default: loop<3>(n, size); break;
  }
  return 0;
}

// fastpath — the loop that scripts/fastpath-cost.sh runs under
// `valgrind --tool=callgrind` to count the instructions of one malloc+free
// pair.  It does a warm-up (the allocator initialises, its caches fill, lazy
// PLT bindings resolve), then N pairs of one fixed size.  The script runs it
// with N and 2N and takes (Ir(2N) - Ir(N)) / N, which cancels start-up, warm-up
// and exit costs exactly.
//   usage: fastpath N SIZE [API]
//   API: malloc (malloc+free, default) | new (operator new + delete) |
//        sized (operator new + sized delete) | none (the bare loop: its cost)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

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
    } else {
      escape(nullptr);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s N SIZE [malloc|new|sized|none]\n", argv[0]);
    return 2;
  }
  long n = std::atol(argv[1]);
  size_t size = std::strtoul(argv[2], nullptr, 10);
  const char* api = argc > 3 ? argv[3] : "malloc";
  int mode = !std::strcmp(api, "malloc") ? 0
           : !std::strcmp(api, "new")    ? 1
           : !std::strcmp(api, "sized")  ? 2
           : !std::strcmp(api, "none")   ? 3 : -1;
  if (mode < 0 || n < 0 || size == 0) {
    std::fprintf(stderr, "fastpath: bad arguments\n");
    return 2;
  }
  // Warm-up: identical in both runs, so it cancels; it also touches a few other
  // sizes the way a real program would have before.
  for (int i = 0; i < 1000; i++) {
    void* p = std::malloc(size);
    void* q = std::malloc(16 + (i % 64) * 16);
    escape(p);
    escape(q);
    std::free(q);
    std::free(p);
  }
  switch (mode) {
    case 0: loop<0>(n, size); break;
    case 1: loop<1>(n, size); break;
    case 2: loop<2>(n, size); break;
    default: loop<3>(n, size); break;
  }
  return 0;
}

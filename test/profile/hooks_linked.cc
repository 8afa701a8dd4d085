// hooks_linked: malloc hooks seen from a program linked with -lammalloc (the
// standard names are ammalloc's): exact counts per API across malloc, calloc,
// realloc, the memalign family, operator new/new[]/delete/delete[] (plain,
// sized, aligned, nothrow) and free, from several threads
// (test/profile/meson.build runs it). Only calls made by the workload threads
// count (a thread-local switch): libstdc++ and libc allocate on their own too.
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <atomic>
#include <new>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"

namespace {

thread_local bool t_counting = false;
std::atomic<long> g_alloc[AM_API_COUNT], g_post_alloc[AM_API_COUNT], g_free[AM_API_COUNT],
    g_post_free[AM_API_COUNT];
std::atomic<long> g_mismatch{0};

void pre_alloc(void*, size_t, am_api api) {
  if (t_counting) g_alloc[api]++;
}
void post_alloc(void*, void* p, size_t, am_api api) {
  if (!t_counting) return;
  g_post_alloc[api]++;
  if (p == nullptr) g_mismatch++;
  // A hook may allocate: none of this is counted (or it would never end).
  void* scratch = malloc(32);
  free(scratch);
}
void pre_free(void*, void*, size_t size, am_api api) {
  if (!t_counting) return;
  g_free[api]++;
  if (size == 0) g_mismatch++;
}
void post_free(void*, void*, size_t, am_api api) {
  if (t_counting) g_post_free[api]++;
}

struct alignas(64) Wide {
  char bytes[64];
};

// The compiler may drop an allocation whose block is never used (GCC's
// allocation DCE); every block escapes through here (and meson builds this
// file with -fno-builtin -fno-allocation-dce as well).
template <typename T>
T* use(T* p) {
  __asm__ __volatile__("" : : "r"(p) : "memory");
  return p;
}

void workload(int rounds) {
  t_counting = true;
  for (int i = 0; i < rounds; ++i) {
    void* p = use(malloc(100 + i % 500));
    free(p);
    p = use(calloc(3, 100));
    free(p);
    p = use(realloc(nullptr, 10));     // alloc
    p = use(realloc(p, 100000));       // moves: alloc + free
    p = use(realloc(p, 90000));        // in place: free + alloc
    free(p);
    p = use(memalign(64, 200));
    free(p);
    void* q;
    if (posix_memalign(&q, 256, 300) != 0) abort();
    use(q);
    free(q);
    p = use(aligned_alloc(128, 256));
    free(p);
    p = use(valloc(100));
    free(p);
    p = use(pvalloc(100));
    free(p);
    int* one = use(new int(7));
    delete one;  // sized delete: AM_API_DELETE as well
    char* arr = use(new char[300]);
    delete[] arr;
    Wide* w = use(new Wide);  // aligned new
    delete w;
    Wide* ws = use(new Wide[3]);
    delete[] ws;
    int* nt = use(new (std::nothrow) int[5]);
    delete[] nt;
    char* big = use(new char[1 << 20]);  // large
    delete[] big;
  }
  t_counting = false;
}

int check(am_api api, long allocs, long frees) {
  int bad = 0;
  if (g_alloc[api] != allocs || g_post_alloc[api] != allocs || g_free[api] != frees || g_post_free[api] != frees) {
    fprintf(stderr, "hooks_linked: %s: %ld/%ld allocs, %ld/%ld frees; want %ld allocs, %ld frees\n",
            am_api_name(api), g_alloc[api].load(), g_post_alloc[api].load(), g_free[api].load(),
            g_post_free[api].load(), allocs, frees);
    bad = 1;
  }
  return bad;
}

}  // namespace

int main() {
  am_hooks h{pre_alloc, post_alloc, pre_free, post_free, nullptr};
  int id = am_hook_add(&h);
  if (id <= 0) {
    fprintf(stderr, "hooks_linked: am_hook_add failed\n");
    return 1;
  }
  const int kThreads = 4, kRounds = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) ts.emplace_back(workload, kRounds);
  for (auto& t : ts) t.join();
  workload(kRounds);  // and the main thread
  am_hook_remove(id);
  const long n = (kThreads + 1) * long{kRounds};
  int bad = 0;
  bad |= check(AM_API_MALLOC, n, 0);
  bad |= check(AM_API_CALLOC, n, 0);
  bad |= check(AM_API_REALLOC, 3 * n, 2 * n);
  bad |= check(AM_API_MEMALIGN, n, 0);
  bad |= check(AM_API_POSIX_MEMALIGN, n, 0);
  bad |= check(AM_API_ALIGNED_ALLOC, n, 0);
  bad |= check(AM_API_VALLOC, n, 0);
  bad |= check(AM_API_PVALLOC, n, 0);
  bad |= check(AM_API_NEW, 2 * n, 0);
  bad |= check(AM_API_NEW_ARRAY, 4 * n, 0);
  bad |= check(AM_API_FREE, 0, 8 * n);
  bad |= check(AM_API_FREE_SIZED, 0, 0);
  bad |= check(AM_API_DELETE, 0, 2 * n);
  bad |= check(AM_API_DELETE_ARRAY, 0, 4 * n);
  if (g_mismatch != 0) {
    fprintf(stderr, "hooks_linked: %ld NULL results or zero sizes\n", g_mismatch.load());
    bad = 1;
  }
  // After removal nothing is counted, even with counting on.
  t_counting = true;
  free(use(malloc(10)));
  delete use(new int(1));
  t_counting = false;
  if (g_alloc[AM_API_MALLOC] != n || g_free[AM_API_DELETE] != 2 * n) {
    fprintf(stderr, "hooks_linked: calls counted after am_hook_remove\n");
    bad = 1;
  }
  printf("hooks_linked: %s\n", bad ? "FAIL" : "PASS");
  return bad;
}

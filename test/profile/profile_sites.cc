// profile_sites — a program with known allocation sites, for the heap profiler
// test (test/profile/profile_sites.sh). Plain C++: it uses malloc/new and gets
// ammalloc only when preloaded.
//
// Live at exit (the profile is written then):
//   site_seventy  ~70% of the live bytes (70 MB: blocks of 512..1535 bytes)
//   site_thirty   ~30% of the live bytes (30 MB: blocks of 2..6 KiB, via new[])
// Freed again at once:
//   site_churn    allocates and frees 600 MB (blocks of 4..12 KiB): nothing live,
//                 the largest allocation total.
// Prints the exact byte counts so the test can compare with google-pprof.
//   usage: profile_sites [scale]   (scale 1 = the sizes above)
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

unsigned long long g_rng = 88172645463325252ull;
size_t next(size_t lo, size_t hi) {  // xorshift64, [lo, hi)
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + static_cast<size_t>(g_rng % (hi - lo));
}

// Live blocks are kept here: reachable, so the leak checker (if on) is quiet.
void** g_keep;
size_t g_kept;

}  // namespace

// extern "C" and noinline: stable names in google-pprof's output, and a real
// call into malloc (no tail call) from each site.
extern "C" __attribute__((noinline)) size_t site_seventy(size_t bytes) {
  size_t total = 0;
  while (total < bytes) {
    size_t n = next(512, 1536);
    char* p = static_cast<char*>(malloc(n));
    memset(p, 1, n);
    g_keep[g_kept++] = p;
    total += n;
  }
  return total;
}

extern "C" __attribute__((noinline)) size_t site_thirty(size_t bytes) {
  size_t total = 0;
  while (total < bytes) {
    size_t n = next(2048, 6144);
    char* p = new char[n];
    memset(p, 2, n);
    g_keep[g_kept++] = p;
    total += n;
  }
  return total;
}

extern "C" __attribute__((noinline)) size_t site_churn(size_t bytes) {
  size_t total = 0;
  while (total < bytes) {
    size_t n = next(4096, 12288);
    char* volatile p = static_cast<char*>(malloc(n));
    p[0] = 3;
    free(p);
    total += n;
  }
  return total;
}

int main(int argc, char** argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  size_t mb = static_cast<size_t>(scale * (1 << 20));
  g_keep = static_cast<void**>(calloc(1 << 20, sizeof(void*)));
  // Interleaved in rounds, so that no site has the heap to itself.
  size_t a = 0, b = 0, c = 0;
  for (int round = 0; round < 10; ++round) {
    a += site_seventy(7 * mb);
    c += site_churn(60 * mb);
    b += site_thirty(3 * mb);
  }
  printf("site_seventy %zu\nsite_thirty %zu\nsite_churn %zu\n", a, b, c);
  return 0;
}

/* libprofsite.so: an allocation site inside a shared library, for the test that
 * google-pprof finds symbols of shared-library code through the profile's
 * MAPPED_LIBRARIES section (test/profile/profile_shlib.sh). */
#include <stdlib.h>
#include <string.h>

static void** g_keep;
static size_t g_kept;

/* Keeps `bytes` live in blocks of 4 KiB; returns the bytes allocated. */
__attribute__((noinline)) size_t shlib_site_keep(size_t bytes) {
  size_t total = 0;
  if (g_keep == NULL) g_keep = calloc(1 << 20, sizeof(void*));
  while (total < bytes) {
    char* p = malloc(4096);
    memset(p, 5, 4096);
    g_keep[g_kept++] = p;
    total += 4096;
  }
  return total;
}

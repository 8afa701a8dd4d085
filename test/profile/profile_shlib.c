/* profile_shlib: 80% of its live bytes come from libprofsite.so's
 * shlib_site_keep, 20% from main_site_keep here (test/profile/profile_shlib.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t shlib_site_keep(size_t bytes);

static void** g_keep;
static size_t g_kept;

__attribute__((noinline)) size_t main_site_keep(size_t bytes) {
  size_t total = 0;
  while (total < bytes) {
    char* p = malloc(4096);
    memset(p, 6, 4096);
    g_keep[g_kept++] = p;
    total += 4096;
  }
  return total;
}

int main(void) {
  g_keep = calloc(1 << 16, sizeof(void*));
  size_t a = 0, b = 0;
  for (int i = 0; i < 8; ++i) {
    a += shlib_site_keep(4 << 20);
    b += main_site_keep(1 << 20);
  }
  printf("shlib_site_keep %zu\nmain_site_keep %zu\n", a, b);
  return 0;
}

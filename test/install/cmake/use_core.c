/* am_* beside the system malloc (libammalloc_core, shared or static). */
#include <ammalloc/ammalloc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  void* p = am_malloc(1000);
  int ok = p != NULL && am_malloc_usable_size(p) >= 1000 && strcmp(am_version(), AMMALLOC_VERSION) == 0;
  am_free(p);
  char buf[64];
  am_stats_json(buf, sizeof buf);
  ok = ok && strncmp(buf, "{\"version\":", 11) == 0;
  printf("use_core %s %s\n", am_version(), ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

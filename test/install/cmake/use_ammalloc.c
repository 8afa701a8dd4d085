/* Linked with -lammalloc: the process's malloc is ammalloc's (the stats see
 * a 5 MiB malloc as bytes in use). Prints the header's and the library's version. */
#include <ammalloc/ammalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  size_t before = 0, after = 0;
  am_get_numeric_property("generic.current_allocated_bytes", &before);
  char* p = malloc(5 << 20);
  memset(p, 1, 5 << 20);
  am_get_numeric_property("generic.current_allocated_bytes", &after);
  int ok = after >= before + (5 << 20) && strcmp(am_version(), AMMALLOC_VERSION) == 0;
  printf("use_ammalloc %s %s %s\n", AMMALLOC_VERSION, am_version(), ok ? "ok" : "FAIL");
  free(p);
  return ok ? 0 : 1;
}

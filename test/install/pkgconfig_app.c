/* The README's link line: cc app.c $(pkg-config --cflags --libs ammalloc). */
#include <ammalloc/ammalloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  free(malloc(100));
  printf("pkgconfig_app %s\n", am_version());
  return 0;
}

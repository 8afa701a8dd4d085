/* glibc's private allocation names (__libc_malloc and the rest) under
 * LD_PRELOAD: C libraries call them directly, and their blocks reach the
 * public free() (and the other way round). Under ammalloc each must be an
 * alias of the public function: a block from __libc_malloc passed to free()
 * must not abort with "invalid pointer". Exit 0 when every pairing works. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);
extern void* __libc_memalign(size_t, size_t);
extern void* __libc_valloc(size_t);
extern void* __libc_pvalloc(size_t);

static int failures = 0;
#define EXPECT(cond)                                          \
  do {                                                        \
    if (!(cond)) {                                            \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                             \
    }                                                         \
  } while (0)

int main(void) {
  for (size_t size = 1; size <= (size_t)4 << 20; size *= 3) {
    char* p = __libc_malloc(size);
    EXPECT(p != NULL);
    memset(p, 1, size);
    EXPECT(malloc_usable_size(p) >= size);
    free(p);

    p = malloc(size);
    EXPECT(p != NULL);
    __libc_free(p);

    unsigned char* z = __libc_calloc(size, 1);
    EXPECT(z != NULL);
    for (size_t i = 0; i < size; i += 4096) EXPECT(z[i] == 0);
    z = __libc_realloc(z, size * 2 + 1);
    EXPECT(z != NULL);
    free(z);

    void* a = __libc_memalign(4096, size);
    EXPECT(a != NULL && ((uintptr_t)a & 4095) == 0);
    free(a);
    a = __libc_valloc(size);
    EXPECT(a != NULL && ((uintptr_t)a & 4095) == 0);
    __libc_free(a);
    a = __libc_pvalloc(size);
    EXPECT(a != NULL && ((uintptr_t)a & 4095) == 0);
    free(a);
  }
  char* r = __libc_realloc(NULL, 100);
  EXPECT(r != NULL);
  r = realloc(r, 1000);
  __libc_free(r);
  if (failures == 0) puts("libc_private_names: every __libc_* name pairs with the public ones");
  return failures == 0 ? 0 : 1;
}

/* bad_pointer.c — performs one misuse of the allocator, chosen by argv[1].
 *
 *   interior             free(p + 16) of a malloc(64) block
 *   foreign              free() of a static array
 *   stack                free() of a stack address
 *   double-large         free() twice of a 1 MiB block
 *   realloc-freed-large  realloc() of a freed 1 MiB block
 *   usable-foreign       malloc_usable_size() of a static array's address
 *
 * ammalloc must notice each one, print `ammalloc: <function>(): invalid pointer
 * 0x...` (or a `double free` message) to stderr and abort; bad_pointer.sh checks
 * that. Before the misuse it prints `bad_pointer: target 0x<address>`, the
 * pointer it is about to pass. If the call returns, it says so and exits 3.
 *
 * Pointers go through launder() so that the compiler neither warns about nor
 * optimises away the deliberate misuse. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* launder(void* p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

static char static_array[8192] __attribute__((aligned(4096)));

static int survived(const char* what) {
  printf("bad_pointer: %s was not detected: the call returned\n", what);
  fflush(stdout);
  return 3;
}

/* The script compares this address with the one in ammalloc's message. */
static void* announce(void* p) {
  printf("bad_pointer: target %#lx\n", (unsigned long)p);
  fflush(stdout);
  return p;
}

static int usage(void) {
  fputs("usage: bad_pointer interior|foreign|stack|double-large|realloc-freed-large|"
        "usable-foreign\n",
        stderr);
  return 2;
}

static int do_stack(void) {
  char local[256];
  memset(local, 1, sizeof local);
  free(announce(launder(local + 64)));
  return survived("free of a stack address");
}

int main(int argc, char** argv) {
  if (argc != 2) return usage();
  const char* what = argv[1];
  printf("bad_pointer: %s\n", what);
  fflush(stdout);

  if (strcmp(what, "interior") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    free(announce(launder(p + 16)));
    return survived("free of an interior pointer");
  }
  if (strcmp(what, "foreign") == 0) {
    static_array[0] = 1;
    free(announce(launder(static_array)));
    return survived("free of a static array");
  }
  if (strcmp(what, "stack") == 0) return do_stack();
  if (strcmp(what, "double-large") == 0) {
    char* p = malloc(1 << 20);
    if (!p) return 4;
    memset(p, 0, 1 << 20);
    char* alias = announce(launder(p)); /* laundered before the free: no -Wuse-after-free */
    free(p);
    free(alias);
    return survived("double free of a 1 MiB block");
  }
  if (strcmp(what, "realloc-freed-large") == 0) {
    char* p = malloc(1 << 20);
    if (!p) return 4;
    memset(p, 0, 1 << 20);
    char* alias = announce(launder(p));
    free(p);
    void* r = realloc(alias, 2 << 20);
    printf("bad_pointer: realloc returned %p\n", r);
    return survived("realloc of a freed 1 MiB block");
  }
  if (strcmp(what, "usable-foreign") == 0) {
    size_t n = malloc_usable_size(announce(launder(static_array)));
    printf("bad_pointer: malloc_usable_size returned %zu\n", n);
    return survived("malloc_usable_size of a static array");
  }
  return usage();
}

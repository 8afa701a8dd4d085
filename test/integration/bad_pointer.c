/* bad_pointer.c — performs one misuse of the allocator, chosen by argv[1].
 *
 *   interior             free(p + 16) of a malloc(64) block
 *   interior-large       free(p + 8192) of a malloc(1 MiB) block
 *   realloc-interior     realloc(p + 32, 100) of a malloc(64) block
 *   foreign              free() of a static array
 *   stack                free() of a stack address
 *   double-large         free() twice of a 1 MiB block
 *   realloc-freed-large  realloc() of a freed 1 MiB block
 *   usable-foreign       malloc_usable_size() of a static array's address
 *   usable-stack         malloc_usable_size() of a stack address
 *   span-tail            free() of the address just past the last object of a
 *                        full span of 48-byte objects: a multiple of 48 from
 *                        the span start, but in the span's unused tail
 *   free-sized-class     free_sized(p, 1000) of a malloc(64) block (a size
 *                        from another, larger, size class)
 *   free-sized-smaller   free_sized(p, 16) of a malloc(1000) block
 *   free-sized-large     free_sized(p, 64) of a malloc(1 MiB) block
 *   double-small         free() twice of a 64-byte block (default mode too)
 *   realloc-freed-small  realloc(p, 100) of a freed 64-byte block (default mode too)
 *   realloc-freed-small-inplace  realloc(p, 60) of a freed 64-byte block (a size
 *                        that would keep it in place; default mode too)
 *   double-small-many    1000 64-byte blocks freed (the thread's list fills and
 *                        overflows), then the last one freed again
 *   double-realloc-inplace  q = realloc(p, 48) of a malloc(64) block (in place),
 *                        free(q), then free(p)
 *
 * ammalloc must notice each one, print `ammalloc: <function>(): invalid pointer
 * 0x...` (or `double free of 0x...`) to stderr and abort; bad_pointer.sh checks
 * the function, the address and the signal. Before the misuse it prints
 * `bad_pointer: target 0x<address>`, the pointer it is about to pass. If the
 * call returns, it says so and exits 3.
 *
 * A double free of a SMALL object is caught by default when the object is still
 * the head of the freeing thread's list (freed twice with no allocation of its
 * class in between: the free fast path compares with the head, and realloc
 * does the same before keeping a block in place); every double
 * free of a small object is caught with AMMALLOC_HARDEN=1. Large blocks (whole
 * spans, whose state the page heap keeps) are always caught.
 *
 * Pointers go through launder() so that the compiler neither warns about nor
 * optimises away the deliberate misuse. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
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
  fputs("usage: bad_pointer interior|interior-large|realloc-interior|foreign|stack|double-large|"
        "realloc-freed-large|usable-foreign|usable-stack|span-tail|free-sized-class|"
        "free-sized-smaller|free-sized-large|double-small|realloc-freed-small|\n"
        "realloc-freed-small-inplace\n",
        stderr);
  return 2;
}

/* free_sized (C23) is not in Debian 12's glibc headers or libc: the one the
 * preloaded library exports is found with dlsym. */
typedef void (*free_sized_fn)(void*, size_t);
static free_sized_fn get_free_sized(void) {
  free_sized_fn f = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
  if (f == NULL) {
    printf("bad_pointer: no free_sized in this process (not running under ammalloc?)\n");
    fflush(stdout);
    exit(5);
  }
  return f;
}

static int cmp_ptr(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a, y = *(const uintptr_t*)b;
  return x < y ? -1 : x > y;
}

/* Finds a span of 48-byte objects that this program holds entirely: a run of
 * addresses 48 apart that starts at a multiple of a power of two P >= 4 KiB
 * (the span's start: 48 does not divide P, so no object of a span starts at P)
 * and ends less than 48 bytes before the next multiple of P (where the span
 * ends). The address just past its last object is then a multiple of 48 from
 * the span start but not an object: the span's unused tail. No assumption on
 * the page size or on how many pages the span has, beyond a power of two. */
static int do_span_tail(void) {
  enum { N = 6000, SIZE = 48 };
  static uintptr_t a[N];
  for (int i = 0; i < N; ++i) {
    void* p = malloc(SIZE);
    if (!p) return 4;
    if (malloc_usable_size(p) != SIZE) {
      printf("bad_pointer: malloc(%d) has %zu usable bytes; this case needs a %d-byte class\n", SIZE,
             malloc_usable_size(p), SIZE);
      return 5;
    }
    a[i] = (uintptr_t)p;
  }
  qsort(a, N, sizeof a[0], cmp_ptr);
  for (int i = 0; i < N;) {
    int j = i;
    while (j + 1 < N && a[j + 1] - a[j] == SIZE) ++j;
    uintptr_t start = a[i], end = a[j] + SIZE;
    for (uintptr_t span = 4096; span <= ((uintptr_t)1 << 20); span <<= 1) {
      if (start % span == 0 && start + span > end && start + span - end < SIZE) {
        printf("bad_pointer: a full span of %d-byte objects at %#lx, %lu bytes, %d objects\n", SIZE,
               (unsigned long)start, (unsigned long)span, j - i + 1);
        free(announce(launder((void*)end)));
        return survived("free of an address in a span's unused tail");
      }
    }
    i = j + 1;
  }
  printf("bad_pointer: no complete span of %d-byte objects among %d allocations\n", SIZE, N);
  return 5;
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
  if (strcmp(what, "double-small") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    char* alias = announce(launder(p));
    free(p);
    free(alias);
    return survived("double free of a 64-byte block");
  }
  if (strcmp(what, "realloc-freed-small") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    char* alias = announce(launder(p));
    free(p);
    void* r = realloc(alias, 100);
    printf("bad_pointer: realloc returned %p\n", r);
    return survived("realloc of a freed 64-byte block");
  }
  if (strcmp(what, "realloc-freed-small-inplace") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    char* alias = announce(launder(p));
    free(p);
    void* r = realloc(alias, 60);  /* fits the block: would be kept in place */
    printf("bad_pointer: realloc returned %p\n", r);
    return survived("realloc in place of a freed 64-byte block");
  }
  if (strcmp(what, "double-small-many") == 0) {
    enum { N = 1000 };
    static char* v[N];
    for (int i = 0; i < N; ++i)
      if (!(v[i] = malloc(64))) return 4;
    char* alias = announce(launder(v[N - 1]));
    for (int i = 0; i < N; ++i) free(v[i]);
    free(alias);
    return survived("double free of the last of 1000 64-byte blocks");
  }
  if (strcmp(what, "double-realloc-inplace") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    uintptr_t addr = (uintptr_t)launder(p);
    char* q = realloc(p, 48);
    char* alias = launder((void*)addr);
    if ((uintptr_t)q != addr) {
      printf("bad_pointer: realloc(p, 48) of a 64-byte block moved it\n");
      return 5;
    }
    announce(alias);
    free(q);
    free(alias);
    return survived("double free after an in-place realloc");
  }
  if (strcmp(what, "interior-large") == 0) {
    char* p = malloc(1 << 20);
    if (!p) return 4;
    memset(p, 0, 1 << 20);
    free(announce(launder(p + 8192)));
    return survived("free of an interior pointer of a 1 MiB block");
  }
  if (strcmp(what, "realloc-interior") == 0) {
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    void* r = realloc(announce(launder(p + 32)), 100);
    printf("bad_pointer: realloc returned %p\n", r);
    return survived("realloc of an interior pointer");
  }
  if (strcmp(what, "usable-stack") == 0) {
    char local[64];
    memset(local, 0, sizeof local);
    size_t n = malloc_usable_size(announce(launder(local)));
    printf("bad_pointer: malloc_usable_size returned %zu\n", n);
    return survived("malloc_usable_size of a stack address");
  }
  if (strcmp(what, "span-tail") == 0) return do_span_tail();
  if (strcmp(what, "free-sized-class") == 0) {
    free_sized_fn free_sized_p = get_free_sized();
    char* p = malloc(64);
    if (!p) return 4;
    memset(p, 0, 64);
    free_sized_p(announce(launder(p)), 1000);
    return survived("free_sized of a 64-byte block with size 1000");
  }
  if (strcmp(what, "free-sized-smaller") == 0) {
    free_sized_fn free_sized_p = get_free_sized();
    char* p = malloc(1000);
    if (!p) return 4;
    memset(p, 0, 1000);
    free_sized_p(announce(launder(p)), 16);
    return survived("free_sized of a 1000-byte block with size 16");
  }
  if (strcmp(what, "free-sized-large") == 0) {
    free_sized_fn free_sized_p = get_free_sized();
    char* p = malloc(1 << 20);
    if (!p) return 4;
    memset(p, 0, 1 << 20);
    free_sized_p(announce(launder(p)), 64);
    return survived("free_sized of a 1 MiB block with size 64");
  }
  if (strcmp(what, "usable-foreign") == 0) {
    size_t n = malloc_usable_size(announce(launder(static_array)));
    printf("bad_pointer: malloc_usable_size returned %zu\n", n);
    return survived("malloc_usable_size of a static array");
  }
  return usage();
}

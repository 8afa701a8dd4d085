/* api_edge.c — edge cases of the C malloc family, checked against glibc's contract.
 *
 * Run it plain (glibc) or with LD_PRELOAD=libammalloc.so; both must pass. Every
 * failed check prints one `FAIL: <what>` line; the exit status is 0 if all passed,
 * 1 otherwise. Checks that glibc documents as behaviour (realloc(p, 0) frees and
 * returns NULL, posix_memalign leaves the output alone on EINVAL, ...) are tested
 * exactly; nothing here relies on unspecified behaviour beyond what glibc does.
 *
 * Pointers are passed through escape()/launder() so that the compiler can neither
 * elide a malloc/free pair nor fold a result it thinks it knows. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc 2.26 removed cfree from its headers; the symbol may still exist. */
extern void cfree(void*) __attribute__((weak));

static int g_failures;
static int g_checks;

static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("FAIL: ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
  g_failures++;
}

#define CHECK(cond, ...)      \
  do {                        \
    g_checks++;               \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

static void escape(void* p) { __asm__ volatile("" : : "r"(p) : "memory"); }
static void* launder(void* p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}
/* Sizes pass through a volatile so that no size is a compile-time constant for
 * -Walloc-size-larger-than and friends. */
static size_t opaque(size_t n) {
  volatile size_t v = n;
  return v;
}

static int aligned_to(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 131u + (i >> 8));
}
/* Returns the first index where the pattern differs, or n. */
static size_t verify(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 131u + (i >> 8))) return i;
  return n;
}

/* ---------------------------------------------------------------------------- */

static void test_malloc_zero(void) {
  enum { N = 64 };
  void* ps[N];
  for (int i = 0; i < N; i++) {
    ps[i] = malloc(opaque(0));
    escape(ps[i]);
    CHECK(ps[i] != NULL, "malloc(0) #%d returned NULL", i);
  }
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++)
      CHECK(ps[i] == NULL || ps[i] != ps[j], "malloc(0) returned the same pointer %p twice (#%d, #%d)",
            ps[i], i, j);
  for (int i = 0; i < N; i++) free(ps[i]);
}

static void test_alignment(void) {
  /* Every size 1..300000, freed at once, and a held set so that the allocator
   * cannot just hand back one block. */
  for (size_t n = 1; n <= 300000; n++) {
    unsigned char* p = malloc(opaque(n));
    escape(p);
    if (!p) {
      fail("malloc(%zu) returned NULL", n);
      continue;
    }
    if (!aligned_to(p, 16)) fail("malloc(%zu) = %p not 16-byte aligned", n, (void*)p);
    p[0] = 1;
    p[n - 1] = 2;
    free(p);
  }
  enum { HELD = 2000 };
  static void* held[HELD];
  size_t n = 1;
  for (int i = 0; i < HELD; i++) {
    n = (n * 7 + 13) % 300000 + 1;
    held[i] = malloc(opaque(n));
    escape(held[i]);
    CHECK(held[i] && aligned_to(held[i], 16), "held malloc(%zu) = %p not 16-byte aligned", n, held[i]);
    if (held[i]) memset(held[i], 0x5a, n < 64 ? n : 64);
  }
  for (int i = 0; i < HELD; i++) free(held[i]);
}

static void test_malloc_huge(void) {
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX, SIZE_MAX - 4096,
                          (size_t)PTRDIFF_MAX + 4096};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    void* p = malloc(opaque(sizes[i]));
    escape(p);
    int e = errno;
    CHECK(p == NULL, "malloc(%zu) returned %p, not NULL", sizes[i], p);
    CHECK(e == ENOMEM, "malloc(%zu): errno %d, want ENOMEM", sizes[i], e);
    free(p);
  }
}

static void test_calloc(void) {
  const size_t sizes[] = {1,     7,     16,    24,    100,     256,     1000,    4096,   10000,
                          65536, 70000, 262144, 262145, 300000, 1 << 20, 8 << 20, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = opaque(sizes[i]);
    /* dirty a block of this size, free it, then calloc the same size: the reused
     * block must come back zeroed */
    for (int round = 0; round < 3; round++) {
      unsigned char* d = malloc(n);
      escape(d);
      if (!d) {
        fail("malloc(%zu) returned NULL", n);
        continue;
      }
      memset(d, 0xAA, n);
      escape(d);
      uintptr_t dv = (uintptr_t)d;
      free(launder(d));
      unsigned char* c = calloc(1, n);
      escape(c);
      if (!c) {
        fail("calloc(1, %zu) returned NULL", n);
        continue;
      }
      size_t bad = n;
      for (size_t k = 0; k < n; k++)
        if (c[k]) {
          bad = k;
          break;
        }
      CHECK(bad == n, "calloc(1, %zu) (round %d, reused %s) byte %zu is 0x%02x, not zero", n, round,
            (uintptr_t)c == dv ? "same block" : "other block", bad, bad < n ? c[bad] : 0);
      memset(c, 0xAA, n); /* dirty again for the next round */
      escape(c);
      free(c);
    }
    /* count * size form */
    size_t cnt = n >= 8 ? n / 8 : 1;
    unsigned long long* c2 = calloc(cnt, 8);
    escape(c2);
    if (c2) {
      for (size_t k = 0; k < cnt; k++)
        if (c2[k]) {
          fail("calloc(%zu, 8) word %zu not zero", cnt, k);
          break;
        }
      free(c2);
    } else {
      fail("calloc(%zu, 8) returned NULL", cnt);
    }
  }
  /* calloc(0, n) and calloc(n, 0) behave like malloc(0) */
  void* z1 = calloc(opaque(0), 16);
  void* z2 = calloc(16, opaque(0));
  escape(z1);
  escape(z2);
  CHECK(z1 != NULL && z2 != NULL && z1 != z2, "calloc with a zero argument: %p %p", z1, z2);
  free(z1);
  free(z2);

  /* overflow of count * size */
  const size_t ov[][2] = {{SIZE_MAX / 2, 3}, {3, SIZE_MAX / 2}, {SIZE_MAX, SIZE_MAX},
                          {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX / 16 + 1, 16}};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
    errno = 0;
    void* p = calloc(opaque(ov[i][0]), opaque(ov[i][1]));
    escape(p);
    int e = errno;
    CHECK(p == NULL, "calloc(%zu, %zu) overflow returned %p", ov[i][0], ov[i][1], p);
    CHECK(e == ENOMEM, "calloc(%zu, %zu) overflow: errno %d, want ENOMEM", ov[i][0], ov[i][1], e);
    free(p);
  }
  /* no overflow, but too big */
  errno = 0;
  void* p = calloc(opaque(1), opaque(SIZE_MAX - 64));
  escape(p);
  CHECK(p == NULL && errno == ENOMEM, "calloc(1, SIZE_MAX-64): %p errno %d", p, errno);
}

static void test_realloc(void) {
  /* realloc(NULL, n) behaves like malloc(n) */
  unsigned char* p = realloc(NULL, opaque(100));
  escape(p);
  CHECK(p != NULL && aligned_to(p, 16), "realloc(NULL, 100) = %p", (void*)p);
  if (p) {
    memset(p, 1, 100);
    CHECK(malloc_usable_size(p) >= 100, "malloc_usable_size(realloc(NULL,100)) = %zu",
          malloc_usable_size(p));
  }
  /* realloc(p, 0) frees p and returns NULL (glibc) */
  errno = 0;
  void* r = realloc(launder(p), opaque(0));
  escape(r);
  CHECK(r == NULL, "realloc(p, 0) returned %p, glibc returns NULL (and frees p)", r);
  if (r) free(r);
  /* realloc(NULL, 0) is malloc(0): a unique pointer */
  r = realloc(NULL, opaque(0));
  escape(r);
  CHECK(r != NULL, "realloc(NULL, 0) returned NULL");
  free(r);

  /* growing through small classes into large and back, content preserved */
  const size_t chain[] = {1,      8,      16,     17,      33,      64,      100,     128,
                          255,    512,    1000,   1024,    2049,    4096,    8000,    16384,
                          32769,  65536,  100000, 200000,  262144,  262145,  300000,  1 << 20,
                          3 << 20, 9 << 20, 2 << 20, 300000, 262145, 262144,  200000,  70000,
                          4096,   4000,   1000,   300,     48,      16,      9,       1,
                          2 << 20, 5,      500000, 20,      1 << 20, 1 << 21};
  const size_t nchain = sizeof chain / sizeof chain[0];
  unsigned seed = 7;
  unsigned char* q = malloc(opaque(chain[0]));
  escape(q);
  if (!q) {
    fail("malloc(1) returned NULL");
    return;
  }
  fill(q, chain[0], seed);
  for (size_t i = 1; i < nchain; i++) {
    size_t old = chain[i - 1], now = chain[i];
    unsigned char* n = realloc(q, opaque(now));
    escape(n);
    if (!n) {
      fail("realloc(%zu -> %zu) returned NULL", old, now);
      free(q);
      return;
    }
    CHECK(aligned_to(n, 16), "realloc(%zu -> %zu) = %p not 16-byte aligned", old, now, (void*)n);
    size_t keep = old < now ? old : now;
    size_t bad = verify(n, keep, seed);
    CHECK(bad == keep, "realloc(%zu -> %zu) lost content at byte %zu", old, now, bad);
    CHECK(malloc_usable_size(n) >= now, "malloc_usable_size after realloc to %zu = %zu", now,
          malloc_usable_size(n));
    seed = seed * 33u + 1u;
    fill(n, now, seed);
    q = n;
  }
  free(q);

  /* realloc to a huge size fails with ENOMEM and leaves the block alone */
  unsigned char* k = malloc(opaque(200));
  escape(k);
  if (k) {
    fill(k, 200, 99);
    errno = 0;
    void* f = realloc(launder(k), opaque(SIZE_MAX - 100));
    escape(f);
    int e = errno;
    CHECK(f == NULL && e == ENOMEM, "realloc(p, SIZE_MAX-100): %p errno %d", f, e);
    if (f == NULL) {
      CHECK(verify(k, 200, 99) == 200, "realloc failure modified the original block");
      free(k);
    }
  }
}

static void test_reallocarray(void) {
  unsigned char* p = reallocarray(NULL, opaque(10), opaque(10));
  escape(p);
  CHECK(p != NULL, "reallocarray(NULL, 10, 10) returned NULL");
  if (!p) return;
  fill(p, 100, 3);
  unsigned char* q = reallocarray(p, opaque(1000), opaque(10));
  escape(q);
  CHECK(q != NULL, "reallocarray(p, 1000, 10) returned NULL");
  if (!q) {
    free(p);
    return;
  }
  CHECK(verify(q, 100, 3) == 100, "reallocarray(p, 1000, 10) lost content");
  fill(q, 10000, 4);
  const size_t ov[][2] = {{SIZE_MAX / 2, 3}, {(size_t)1 << 33, (size_t)1 << 33}, {SIZE_MAX, 2}};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
    errno = 0;
    void* r = reallocarray(launder(q), opaque(ov[i][0]), opaque(ov[i][1]));
    escape(r);
    int e = errno;
    CHECK(r == NULL, "reallocarray(p, %zu, %zu) overflow returned %p", ov[i][0], ov[i][1], r);
    CHECK(e == ENOMEM, "reallocarray(p, %zu, %zu) overflow: errno %d, want ENOMEM", ov[i][0],
          ov[i][1], e);
    if (r) {
      q = r; /* should not happen; keep the program sane */
      continue;
    }
    CHECK(verify(q, 10000, 4) == 10000, "reallocarray overflow modified the original block");
    CHECK(malloc_usable_size(q) >= 10000, "reallocarray overflow shrank the original block");
  }
  free(q);
}

static void test_posix_memalign_einval(void) {
  void* const sentinel = (void*)(uintptr_t)0xdeadbeefcafe0;
  const size_t bad[] = {0, 1, 2, 3, 24, sizeof(void*) / 2, 12, 48, 4097, (size_t)1 << 63 | 1,
                        SIZE_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void* out = sentinel;
    int rc = posix_memalign(&out, opaque(bad[i]), opaque(64));
    CHECK(rc == EINVAL, "posix_memalign(alignment %zu) returned %d, want EINVAL", bad[i], rc);
    CHECK(out == sentinel, "posix_memalign(alignment %zu) changed the output to %p", bad[i], out);
    if (rc == 0 && out != sentinel) free(out);
  }
  /* good alignment, impossible size: ENOMEM */
  void* out = sentinel;
  int rc = posix_memalign(&out, 64, opaque(SIZE_MAX - 4096));
  CHECK(rc == ENOMEM, "posix_memalign(64, SIZE_MAX-4096) returned %d, want ENOMEM", rc);
  if (rc == 0) free(out);
  /* size 0 gives a freeable (possibly NULL) pointer */
  out = sentinel;
  rc = posix_memalign(&out, 64, opaque(0));
  CHECK(rc == 0, "posix_memalign(64, 0) returned %d", rc);
  if (rc == 0) {
    CHECK(out != sentinel, "posix_memalign(64, 0) did not set the output");
    if (out != sentinel) free(out);
  }
}

static void touch(unsigned char* p, size_t n, const char* what, size_t a) {
  p[n - 1] = 0x22;
  p[0] = 0x11;
  escape(p);
  CHECK(p[0] == 0x11 && (n == 1 || p[n - 1] == 0x22), "%s(align %zu, size %zu) not writable", what, a, n);
  CHECK(malloc_usable_size(p) >= n, "%s(align %zu, size %zu): malloc_usable_size %zu", what, a, n,
        malloc_usable_size(p));
}

static void test_aligned_family(void) {
  const size_t sizes[] = {40, 300 * 1024};
  for (size_t a = 8; a <= ((size_t)1 << 30); a <<= 1) {
    for (size_t s = 0; s < 2; s++) {
      size_t n = opaque(sizes[s]);
      void* p = NULL;
      int rc = posix_memalign(&p, opaque(a), n);
      CHECK(rc == 0 && p != NULL, "posix_memalign(%zu, %zu) returned %d", a, n, rc);
      if (rc == 0 && p) {
        CHECK(aligned_to(p, a), "posix_memalign(%zu, %zu) = %p misaligned", a, n, p);
        touch(p, n, "posix_memalign", a);
        free(p);
      }
      errno = 0;
      p = aligned_alloc(opaque(a), n);
      escape(p);
      CHECK(p != NULL, "aligned_alloc(%zu, %zu) returned NULL errno %d", a, n, errno);
      if (p) {
        CHECK(aligned_to(p, a), "aligned_alloc(%zu, %zu) = %p misaligned", a, n, p);
        touch(p, n, "aligned_alloc", a);
        free(p);
      }
      errno = 0;
      p = memalign(opaque(a), n);
      escape(p);
      CHECK(p != NULL, "memalign(%zu, %zu) returned NULL errno %d", a, n, errno);
      if (p) {
        CHECK(aligned_to(p, a), "memalign(%zu, %zu) = %p misaligned", a, n, p);
        touch(p, n, "memalign", a);
        free(p);
      }
    }
  }
  /* several live aligned blocks at once, then realloc one of them */
  void* live[32];
  for (int i = 0; i < 32; i++) {
    size_t a = (size_t)16 << (i % 10);
    live[i] = memalign(a, opaque(24 + (size_t)i * 1000));
    escape(live[i]);
    CHECK(live[i] && aligned_to(live[i], a), "live memalign(%zu) = %p", a, live[i]);
    if (live[i]) memset(live[i], i, 24 + (size_t)i * 1000);
  }
  for (int i = 0; i < 32; i++) {
    unsigned char* r = realloc(live[i], opaque(100000));
    escape(r);
    CHECK(r != NULL, "realloc of a memalign block returned NULL");
    if (!r) {
      free(live[i]);
      continue;
    }
    size_t bad = 0;
    for (size_t k = 0; k < 24 + (size_t)i * 1000; k++)
      if (r[k] != (unsigned char)i) {
        bad = k + 1;
        break;
      }
    CHECK(bad == 0, "realloc of a memalign block lost byte %zu", bad - 1);
    free(r);
  }
  /* memalign with a huge size fails */
  errno = 0;
  void* h = memalign(64, opaque(SIZE_MAX - 1000));
  escape(h);
  CHECK(h == NULL && errno == ENOMEM, "memalign(64, SIZE_MAX-1000): %p errno %d", h, errno);
}

static void test_valloc_pvalloc(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t sizes[] = {1, 100, 4095, 4096, 4097, 10000, 65536, 300000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = opaque(sizes[i]);
    unsigned char* v = valloc(n);
    escape(v);
    CHECK(v != NULL && aligned_to(v, page), "valloc(%zu) = %p not page aligned", n, (void*)v);
    if (v) {
      v[0] = 1;
      v[n - 1] = 1;
      CHECK(malloc_usable_size(v) >= n, "valloc(%zu): usable %zu", n, malloc_usable_size(v));
      free(v);
    }
    unsigned char* pv = pvalloc(n);
    escape(pv);
    size_t rounded = (n + page - 1) / page * page;
    CHECK(pv != NULL && aligned_to(pv, page), "pvalloc(%zu) = %p not page aligned", n, (void*)pv);
    if (pv) {
      CHECK(malloc_usable_size(pv) >= rounded, "pvalloc(%zu): usable %zu < rounded size %zu", n,
            malloc_usable_size(pv), rounded);
      pv[0] = 1;
      pv[rounded - 1] = 1; /* the whole rounded size is the caller's */
      free(pv);
    }
  }
  unsigned char* pz = pvalloc(opaque(0));
  escape(pz);
  CHECK(pz != NULL, "pvalloc(0) returned NULL");
  free(pz);
}

static void test_usable_size(void) {
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
  for (size_t n = 0; n < 70000; n = n < 64 ? n + 1 : n * 5 / 4) {
    unsigned char* p = malloc(opaque(n));
    escape(p);
    if (!p) {
      fail("malloc(%zu) returned NULL", n);
      continue;
    }
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
    if (u) memset(p, 0x33, u); /* every usable byte may be written */
    free(p);
  }
  unsigned char* big = malloc(opaque(5 << 20));
  escape(big);
  if (big) {
    size_t u = malloc_usable_size(big);
    CHECK(u >= (5u << 20), "malloc_usable_size(5 MiB block) = %zu", u);
    big[u - 1] = 1;
    free(big);
  }
}

static void test_glibc_extras(void) {
  /* allocate something so stats have content */
  void* keep[100];
  for (int i = 0; i < 100; i++) {
    keep[i] = malloc(opaque(1000 + (size_t)i * 100));
    escape(keep[i]);
    if (keep[i]) memset(keep[i], 1, 1000);
  }
  struct mallinfo2 m2 = mallinfo2();
  CHECK(m2.uordblks > 0, "mallinfo2().uordblks = %zu after allocations", m2.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo m1 = mallinfo();
#pragma GCC diagnostic pop
  (void)m1;
  int rc = mallopt(M_ARENA_MAX, 4);
  CHECK(rc != 0, "mallopt(M_ARENA_MAX, 4) returned 0");
  rc = mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CHECK(rc != 0, "mallopt(M_MMAP_THRESHOLD, 1 MiB) returned 0");
  fflush(stdout);
  fputs("api_edge: malloc_stats() output follows on stderr\n", stderr);
  malloc_stats();
  fputs("api_edge: end of malloc_stats() output\n", stderr);
  for (int i = 0; i < 100; i++) free(keep[i]);
  rc = malloc_trim(0);
  CHECK(rc == 0 || rc == 1, "malloc_trim(0) returned %d", rc);
  rc = malloc_trim(1 << 20);
  CHECK(rc == 0 || rc == 1, "malloc_trim(1 MiB) returned %d", rc);
  /* still allocates after a trim */
  void* after = malloc(opaque(12345));
  escape(after);
  CHECK(after != NULL, "malloc after malloc_trim returned NULL");
  free(after);
  free(NULL);
  free(launder(NULL));
  if (cfree) {
    void* c = malloc(opaque(77));
    escape(c);
    cfree(c);
    cfree(NULL);
  }
}

/* libc functions that allocate internally must hand back memory that our free,
 * realloc and malloc_usable_size accept: with ammalloc preloaded, a foreign
 * pointer would abort in malloc_usable_size. */
static void test_libc_allocations(void) {
  char* s = strdup("hello, allocator");
  CHECK(s != NULL && strcmp(s, "hello, allocator") == 0, "strdup");
  if (s) {
    CHECK(malloc_usable_size(s) >= 17, "malloc_usable_size(strdup()) = %zu", malloc_usable_size(s));
    char* g = realloc(s, opaque(100000));
    CHECK(g && strcmp(g, "hello, allocator") == 0, "realloc of strdup result");
    free(g ? g : s);
  }
  char* sn = strndup("abcdefgh", 3);
  CHECK(sn && strcmp(sn, "abc") == 0, "strndup");
  free(sn);

  char* a = NULL;
  int len = asprintf(&a, "%s-%d-%0500d", "asprintf", 42, 7);
  CHECK(len == 512 && a != NULL, "asprintf returned %d", len);
  if (a) {
    CHECK(malloc_usable_size(a) >= (size_t)len + 1, "malloc_usable_size(asprintf()) = %zu",
          malloc_usable_size(a));
    free(a);
  }

  static char text[] = "first line\nsecond, longer line...............................\n"
                       "third\n";
  FILE* f = fmemopen(text, sizeof text - 1, "r");
  CHECK(f != NULL, "fmemopen");
  if (f) {
    char* line = NULL;
    size_t cap = 0;
    int lines = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
      lines++;
      CHECK(malloc_usable_size(line) >= (size_t)got + 1, "malloc_usable_size(getline buffer)");
    }
    CHECK(lines == 3, "getline read %d lines, want 3", lines);
    free(line);
    fclose(f);
  }
  /* getline into a buffer that must grow far */
  char* buf = NULL;
  size_t bsz = 0;
  FILE* ms = open_memstream(&buf, &bsz);
  CHECK(ms != NULL, "open_memstream");
  if (ms) {
    for (int i = 0; i < 20000; i++) fputs("0123456789", ms);
    fputc('\n', ms);
    fclose(ms);
    CHECK(bsz == 200001, "open_memstream size %zu", bsz);
    FILE* in = fmemopen(buf, bsz, "r");
    if (in) {
      char* line = NULL;
      size_t cap = 0;
      ssize_t got = getline(&line, &cap, in);
      CHECK(got == 200001, "getline of a 200001-byte line returned %zd", got);
      free(line);
      fclose(in);
    }
    free(buf);
  }
  /* realpath and scandir-like users: tempnam is deprecated; use realpath(NULL) */
  char* rp = realpath(".", NULL);
  CHECK(rp != NULL, "realpath(\".\", NULL)");
  free(rp);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_malloc_zero();
  test_alignment();
  test_malloc_huge();
  test_calloc();
  test_realloc();
  test_reallocarray();
  test_posix_memalign_einval();
  test_aligned_family();
  test_valloc_pvalloc();
  test_usable_size();
  test_glibc_extras();
  test_libc_allocations();
  if (g_failures) {
    printf("api_edge: %d of %d checks FAILED\n", g_failures, g_checks);
    return 1;
  }
  printf("api_edge: all %d checks passed\n", g_checks);
  return 0;
}

/* threads_cross.c — objects cross threads, threads come and go.
 *
 * Phase 1: PRODUCERS threads allocate objects of random sizes (mostly 16 B..64 KiB,
 * about 1% of 300 KiB..2 MiB), write a pattern derived from the object's address
 * and size, and pass them through a bounded mutex-protected queue to CONSUMERS
 * threads, which check the pattern and free them: every free is a cross-thread
 * free. Overlapping or recycled-while-live blocks break the pattern.
 *
 * Phase 2: 2000 short-lived threads (at most WAVE alive at a time), each doing a
 * few hundred malloc/realloc/free; some free blocks that the main thread
 * allocated, some exit while holding blocks that main checks and frees after the
 * join (so thread-cache teardown must not take back live objects).
 *
 * Exit 0 on success; on a pattern mismatch, print a message and exit 1. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  PRODUCERS = 3,
  CONSUMERS = 3,
  PER_PRODUCER = 40000,
  QUEUE_CAP = 1024,
  SHORT_THREADS = 2000,
  WAVE = 16,
  SHORT_OPS = 300,
  HANDOFF = 8, /* blocks main gives to each short thread to free */
  HOLD = 8,    /* blocks each short thread leaves behind for main */
};

/* The block's address travels as an integer: a const void* argument would make
 * GCC think die() reads the (uninitialised) block. */
static void die_at(const char* what, uintptr_t p, size_t n, size_t at) __attribute__((noreturn));
static void die_at(const char* what, uintptr_t p, size_t n, size_t at) {
  fprintf(stderr, "threads_cross: FAIL: %s (block %#lx size %zu, word %zu)\n", what,
          (unsigned long)p, n, at);
  fflush(stderr);
  exit(1);
}
#define die(what, p, n, at) die_at((what), (uintptr_t)(p), (n), (at))

static uint64_t rng_next(uint64_t* s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Log-uniform sizes 16 B..64 KiB, 1 in 100 is 300 KiB..2 MiB. */
static size_t random_size(uint64_t* s) {
  uint64_t r = rng_next(s);
  if (r % 100 == 0) return 300 * 1024 + (size_t)((r >> 8) % (2048 * 1024 - 300 * 1024 + 1));
  unsigned shift = (unsigned)((r >> 8) % 13); /* 16 << 0..12 = 16 .. 64 KiB */
  size_t base = (size_t)16 << shift;
  return base + (size_t)((r >> 16) % base) % (65536 - base + 1);
}

static uint64_t pattern_word(const void* p, size_t n, size_t i) {
  return ((uint64_t)(uintptr_t)p ^ (n * 0x9E3779B97F4A7C15ULL)) + i * 0xD1B54A32D192ED03ULL;
}

/* Words checked: all of the first 512 bytes, then one per 256 bytes, then the
 * last full word; plus the last byte if it is not part of that word. Enough to catch two live blocks overlapping
 * without touching every byte of the 2 MiB ones twice. */
static size_t next_index(size_t i) { return i < 64 ? i + 1 : i + 32; }

static void write_pattern(unsigned char* p, size_t n) {
  uint64_t* w = (uint64_t*)(void*)p;
  size_t words = n / 8;
  for (size_t i = 0; i < words; i = next_index(i)) w[i] = pattern_word(p, n, i);
  if (words) w[words - 1] = pattern_word(p, n, words - 1);
  if (n % 8) p[n - 1] = (unsigned char)(((uintptr_t)p >> 4) ^ n ^ 0x5a);
}

static void check_pattern(const unsigned char* p, size_t n, const char* who) {
  const uint64_t* w = (const uint64_t*)(const void*)p;
  size_t words = n / 8;
  for (size_t i = 0; i < words; i = next_index(i))
    if (w[i] != pattern_word(p, n, i)) die(who, p, n, i);
  if (words && w[words - 1] != pattern_word(p, n, words - 1)) die(who, p, n, words - 1);
  if (n % 8 && p[n - 1] != (unsigned char)(((uintptr_t)p >> 4) ^ n ^ 0x5a)) die(who, p, n, (size_t)-1);
  if (malloc_usable_size((void*)p) < n) die("malloc_usable_size below the requested size", p, n, 0);
}

static unsigned char* alloc_checked(size_t n, const char* who) {
  unsigned char* p = malloc(n);
  if (!p) die(who, NULL, n, 0);
  if (((uintptr_t)p & 15) != 0) die("block not 16-byte aligned", p, n, 0);
  write_pattern(p, n);
  return p;
}

/* ---- phase 1: producer/consumer ---------------------------------------------- */

struct item {
  unsigned char* p;
  size_t n;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  struct item buf[QUEUE_CAP];
  size_t head, count;
  int producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0, 0}}, 0, 0,
       PRODUCERS};

static void queue_push(struct item it) {
  pthread_mutex_lock(&q.mu);
  while (q.count == QUEUE_CAP) pthread_cond_wait(&q.not_full, &q.mu);
  q.buf[(q.head + q.count) % QUEUE_CAP] = it;
  q.count++;
  pthread_cond_signal(&q.not_empty);
  pthread_mutex_unlock(&q.mu);
}

/* Returns 0 when all producers are done and the queue is empty. */
static int queue_pop(struct item* out) {
  pthread_mutex_lock(&q.mu);
  while (q.count == 0 && q.producers_left > 0) pthread_cond_wait(&q.not_empty, &q.mu);
  if (q.count == 0) {
    pthread_mutex_unlock(&q.mu);
    return 0;
  }
  *out = q.buf[q.head];
  q.head = (q.head + 1) % QUEUE_CAP;
  q.count--;
  pthread_cond_signal(&q.not_full);
  pthread_mutex_unlock(&q.mu);
  return 1;
}

static void* producer(void* arg) {
  uint64_t s = 0x1234567ULL + (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL;
  /* keep a few local objects alive too, so producers also free their own blocks */
  struct item local[16] = {{0, 0}};
  for (int i = 0; i < PER_PRODUCER; i++) {
    size_t n = random_size(&s);
    struct item it = {alloc_checked(n, "producer malloc returned NULL"), n};
    if (rng_next(&s) % 8 == 0) {
      unsigned k = (unsigned)(rng_next(&s) % 16);
      if (local[k].p) {
        check_pattern(local[k].p, local[k].n, "producer-local block corrupted");
        free(local[k].p);
      }
      local[k] = it;
      continue;
    }
    queue_push(it);
  }
  for (int k = 0; k < 16; k++)
    if (local[k].p) {
      check_pattern(local[k].p, local[k].n, "producer-local block corrupted at exit");
      free(local[k].p);
    }
  pthread_mutex_lock(&q.mu);
  q.producers_left--;
  pthread_cond_broadcast(&q.not_empty);
  pthread_mutex_unlock(&q.mu);
  return NULL;
}

static void* consumer(void* arg) {
  (void)arg;
  struct item it;
  size_t consumed = 0;
  while (queue_pop(&it)) {
    check_pattern(it.p, it.n, "block corrupted between producer and consumer");
    /* occasionally grow it on this thread first (realloc of a foreign block) */
    if (consumed % 97 == 0) {
      unsigned char* r = realloc(it.p, it.n + 4096);
      if (!r) die("realloc returned NULL", it.p, it.n + 4096, 0);
      it.p = r;
      it.n += 4096;
      write_pattern(it.p, it.n);
      check_pattern(it.p, it.n, "block corrupted after realloc");
    }
    free(it.p);
    consumed++;
  }
  return (void*)consumed;
}

/* ---- phase 2: short-lived threads -------------------------------------------- */

struct short_arg {
  int id;
  struct item handoff[HANDOFF]; /* allocated by main, freed here */
  struct item hold[HOLD];       /* allocated here, freed by main */
};

static void* short_lived(void* argp) {
  struct short_arg* a = argp;
  uint64_t s = 0xabcdefULL + (uint64_t)a->id * 7919;
  struct item slot[32] = {{0, 0}};
  for (int op = 0; op < SHORT_OPS; op++) {
    unsigned k = (unsigned)(rng_next(&s) % 32);
    if (slot[k].p) {
      check_pattern(slot[k].p, slot[k].n, "short-lived thread block corrupted");
      if (op % 5 == 0) {
        size_t n = 16 + (size_t)(rng_next(&s) % 8192);
        unsigned char* r = realloc(slot[k].p, n);
        if (!r) die("realloc returned NULL", slot[k].p, n, 0);
        slot[k].p = r;
        slot[k].n = n;
        write_pattern(r, n);
        continue;
      }
      free(slot[k].p);
      slot[k].p = NULL;
    } else {
      size_t n = (a->id % 10 == 0) ? random_size(&s) : 16 + (size_t)(rng_next(&s) % 1024);
      slot[k].n = n;
      slot[k].p = alloc_checked(n, "short-lived malloc returned NULL");
    }
  }
  for (int k = 0; k < 32; k++)
    if (slot[k].p) {
      check_pattern(slot[k].p, slot[k].n, "short-lived thread block corrupted at exit");
      free(slot[k].p);
    }
  if (a->id % 3 == 0)
    for (int k = 0; k < HANDOFF; k++) {
      check_pattern(a->handoff[k].p, a->handoff[k].n, "block from main corrupted");
      free(a->handoff[k].p);
      a->handoff[k].p = NULL;
    }
  if (a->id % 3 == 1)
    for (int k = 0; k < HOLD; k++) {
      size_t n = 24 + (size_t)(rng_next(&s) % 3000);
      a->hold[k].n = n;
      a->hold[k].p = alloc_checked(n, "short-lived malloc (hold) returned NULL");
    }
  return NULL;
}

int main(void) {
  pthread_t prod[PRODUCERS], cons[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++)
    if (pthread_create(&cons[i], NULL, consumer, NULL) != 0) die("pthread_create", NULL, 0, 0);
  for (int i = 0; i < PRODUCERS; i++)
    if (pthread_create(&prod[i], NULL, producer, (void*)(uintptr_t)(i + 1)) != 0)
      die("pthread_create", NULL, 0, 0);
  for (int i = 0; i < PRODUCERS; i++) pthread_join(prod[i], NULL);
  size_t consumed = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    void* r;
    pthread_join(cons[i], &r);
    consumed += (size_t)(uintptr_t)r;
  }
  printf("threads_cross: phase 1: %zu blocks passed between threads\n", consumed);

  static struct short_arg args[WAVE];
  uint64_t s = 99;
  int started = 0, held_freed = 0, handed_over = 0;
  while (started < SHORT_THREADS) {
    pthread_t th[WAVE];
    int n = 0;
    for (; n < WAVE && started < SHORT_THREADS; n++, started++) {
      struct short_arg* a = &args[n];
      memset(a, 0, sizeof *a);
      a->id = started;
      for (int k = 0; k < HANDOFF; k++) {
        a->handoff[k].n = 16 + (size_t)(rng_next(&s) % 4000);
        a->handoff[k].p = alloc_checked(a->handoff[k].n, "main malloc returned NULL");
      }
      if (pthread_create(&th[n], NULL, short_lived, a) != 0) die("pthread_create", NULL, 0, 0);
    }
    for (int i = 0; i < n; i++) {
      pthread_join(th[i], NULL);
      struct short_arg* a = &args[i];
      for (int k = 0; k < HANDOFF; k++)
        if (a->handoff[k].p) { /* the thread did not take it: main frees it */
          check_pattern(a->handoff[k].p, a->handoff[k].n, "main block corrupted");
          free(a->handoff[k].p);
        } else {
          handed_over++;
        }
      for (int k = 0; k < HOLD; k++)
        if (a->hold[k].p) {
          check_pattern(a->hold[k].p, a->hold[k].n, "block left by an exited thread corrupted");
          free(a->hold[k].p);
          held_freed++;
        }
    }
  }
  printf("threads_cross: phase 2: %d threads, %d blocks freed by them for main, %d blocks freed "
         "by main after their exit\n",
         started, handed_over, held_freed);
  puts("threads_cross: OK");
  return 0;
}

// heap_fuzz.cc — libFuzzer target: differential fuzzing of the am_* heap
// against a shadow model.
//
// The input is decoded into operations on up to 4 LOGICAL threads. Each
// logical thread is a real thread (so the thread caches, the transfer cache,
// thread exit and cross-thread frees are all exercised), but only one runs at
// a time: the main thread hands a run of operations to one worker and waits for
// it (a baton). The interleaving is a function of the input alone, and every
// point between two operations is quiescent, which is what lets the stats be
// checked exactly after every operation. (Races are the stress test's job:
// test/stress/.)
//
// The model holds every live block: address, size asked for, usable size,
// alignment asked for, and the API that made it. Every block is filled up to
// its usable size with a pattern derived from its address and size (all of it
// up to 64 KiB; both ends and a probe in every page above), and checked
//   - before it is freed, by the occasional check-all operation, and on a failed
//     realloc (the block must be intact);
//   - after realloc: the prefix min(old size, new size) holds the old pattern;
//   - calloc: zero before it is filled.
// Also checked: alignment (16 by default, the asked power of two otherwise),
// usable size >= size asked for and stable (am_malloc_usable_size), no two
// live blocks overlap, NULL + ENOMEM exactly for impossible sizes,
// posix_memalign's EINVAL/ENOMEM leaving the output alone, aligned_alloc's
// EINVAL, operator new's std::bad_alloc; and after EVERY operation
//     generic.current_allocated_bytes == baseline + sum of usable sizes.
// libFuzzer allocates through the system malloc; the am_* heap is only the
// model's, so this holds exactly, and since ammalloc derives "in use" from
// everything else (mapped - page heap free - central - transfer - thread caches
// - metadata), it proves that every tier accounts for each byte it holds. At
// the end of each input every block is freed (a share on each thread, so most
// frees are cross-thread) and the figure must be back at the baseline.
//
// The background threads are off (AMMALLOC_SCAVENGER=0, AMMALLOC_GC_INTERVAL_MS=0):
// they would move bytes between tiers while the figures are read. The GC's
// reclaim of other threads' caches is still driven, deterministically, by the
// am_reset operation.
//
// Input format (test/fuzz/make_corpus.py writes seeds): byte 0 picks the number
// of threads (1 + b % 4); then operations, each an opcode byte (mapped by
// weight, see OpTable) and its arguments (decode()). Bytes past the end read
// as 0.
//
// Build and run: scripts/fuzz.sh [seconds]. Reproduce: build-fuzz/heap_fuzz FILE
// (HEAP_FUZZ_TRACE=1 prints every operation, HEAP_FUZZ_STATS=1 the heap's figures
// after each input).
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <condition_variable>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "ammalloc/ammalloc.h"

namespace {

constexpr int kMaxThreads = 4;
constexpr size_t KiB = 1024, MiB = 1024 * KiB;
constexpr size_t kMaxSmall = 256 * KiB;    // largest size-class object (README)
constexpr size_t kLiveBudget = 192 * MiB;  // live bytes at most: keeps RSS modest
constexpr size_t kMaxLive = 4096;          // blocks in the model at most
constexpr size_t kOsPage = 4096;           // valloc/pvalloc alignment

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("heap_fuzz: FAIL: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

// ---- patterns ---------------------------------------------------------------------
// The pattern loops are the harness's hot spot: no coverage feedback (it would
// only say "a loop ran") and no ASan checks (ammalloc's memory is not ASan's).
#if defined(__clang__)
#define AM_FUZZ_HOT __attribute__((no_sanitize("address", "coverage")))
#else
#define AM_FUZZ_HOT
#endif

AM_FUZZ_HOT inline uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

AM_FUZZ_HOT size_t first_nonzero(const uint8_t* p, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i)
    if (p[i] != 0) return i;
  return SIZE_MAX;
}

uint64_t seed_of(const void* p, size_t size) {
  return mix(reinterpret_cast<uintptr_t>(p) ^ (uint64_t{size} * 0x2545f4914f6cdd1dull));
}

// The regions of an n-byte block that are filled and checked: all of it up to
// 64 KiB; above, both 8 KiB ends and 64 bytes of every 4 KiB page (every 64
// KiB above 1 MiB), so that two blocks sharing a page cannot go unnoticed.
template <typename F>
void for_regions(size_t n, F f) {
  constexpr size_t kFull = 64 * KiB, kEdge = 8 * KiB, kProbe = 64;
  if (n <= kFull) {
    if (n) f(size_t{0}, n);
    return;
  }
  size_t stride = n <= 1 * MiB ? 4 * KiB : 64 * KiB;
  f(size_t{0}, kEdge);
  for (size_t o = kEdge; o + kProbe <= n - kEdge; o += stride) f(o, o + kProbe);
  f(n - kEdge, n);
}

// Byte i of a block's pattern is byte i % 8 of mix(seed + i / 8). Blocks are
// 16-aligned, so whole words are aligned stores; constant-size memcpy becomes
// a plain move (no call into ASan's interceptor).
AM_FUZZ_HOT void fill_range(uint8_t* p, size_t from, size_t to, uint64_t seed) {
  size_t i = from;
  for (; i < to && (i & 7); ++i) p[i] = static_cast<uint8_t>(mix(seed + (i >> 3)) >> (8 * (i & 7)));
  for (; i + 8 <= to; i += 8) {
    uint64_t w = mix(seed + (i >> 3));
    __builtin_memcpy(p + i, &w, 8);
  }
  for (; i < to; ++i) p[i] = static_cast<uint8_t>(mix(seed + (i >> 3)) >> (8 * (i & 7)));
}

// Offset of the first byte that differs from the pattern, or SIZE_MAX.
AM_FUZZ_HOT size_t check_range(const uint8_t* p, size_t from, size_t to, uint64_t seed) {
  size_t i = from;
  for (; i < to && (i & 7); ++i)
    if (p[i] != static_cast<uint8_t>(mix(seed + (i >> 3)) >> (8 * (i & 7)))) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    if (w != mix(seed + (i >> 3))) break;  // the byte loop below finds which
  }
  for (; i < to; ++i)
    if (p[i] != static_cast<uint8_t>(mix(seed + (i >> 3)) >> (8 * (i & 7)))) return i;
  return SIZE_MAX;
}

// ---- the model ---------------------------------------------------------------------

enum class Origin : uint8_t {
  kMalloc, kCalloc, kRealloc, kMemalign, kPosixMemalign, kAlignedAlloc, kValloc, kPvalloc, kNew
};
const char* origin_name(Origin o) {
  static const char* const kNames[] = {"malloc",        "calloc", "realloc", "memalign", "posix_memalign",
                                       "aligned_alloc", "valloc", "pvalloc", "am_new"};
  return kNames[static_cast<int>(o)];
}

struct Block {
  uint8_t* p;
  size_t size;    // asked for (what free_sized gets)
  size_t usable;  // am_malloc_usable_size at allocation
  size_t align;   // asked for; > 16 means am_free_aligned_sized applies
  Origin origin;
};

struct Model {
  std::vector<Block> live;
  std::map<uintptr_t, uintptr_t> ranges;  // start -> end of usable bytes: overlap checks
  size_t usable_sum = 0;
  size_t baseline = 0;  // generic.current_allocated_bytes with nothing live
  bool have_baseline = false;
  unsigned long ops = 0;
  unsigned long inputs = 0;
};
Model& g = *new Model;  // never destroyed: the workers outlive exit()

size_t prop(const char* name) {
  size_t v = 0;
  if (!am_get_numeric_property(name, &v)) fail("am_get_numeric_property(%s): unknown name", name);
  return v;
}

void check_stats(const char* after) {
  size_t in_use = prop("generic.current_allocated_bytes");
  size_t want = g.baseline + g.usable_sum;
  if (in_use != want)
    fail("after %s (input %lu, op %lu): generic.current_allocated_bytes = %zu, but the model holds "
         "%zu blocks of %zu usable bytes over a baseline of %zu = %zu (off by %lld)",
         after, g.inputs, g.ops, in_use, g.live.size(), g.usable_sum, g.baseline, want,
         static_cast<long long>(in_use) - static_cast<long long>(want));
}

void check_block(const Block& b, const char* when) {
  uint64_t seed = seed_of(b.p, b.size);
  for_regions(b.usable, [&](size_t from, size_t to) {
    size_t bad = check_range(b.p, from, to, seed);
    if (bad != SIZE_MAX)
      fail("%s: block %p (%s, size %zu, usable %zu, align %zu) corrupted at offset %zu", when,
           static_cast<void*>(b.p), origin_name(b.origin), b.size, b.usable, b.align, bad);
  });
  size_t u = am_malloc_usable_size(b.p);
  if (u != b.usable)
    fail("%s: am_malloc_usable_size(%p) = %zu, was %zu at allocation", when, static_cast<void*>(b.p), u,
         b.usable);
}

// Takes a new block into the model: checks it, fills it.
void model_add(void* vp, size_t size, size_t align, Origin origin) {
  const char* api = origin_name(origin);
  uint8_t* p = static_cast<uint8_t*>(vp);
  if (p == nullptr) fail("%s(%zu, align %zu) returned NULL (errno %d)", api, size, align, errno);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  size_t need = align < 16 ? 16 : align;
  if (a & (need - 1)) fail("%s(%zu, align %zu) = %p is not %zu-aligned", api, size, align, vp, need);
  size_t usable = am_malloc_usable_size(p);
  if (usable < size) fail("%s(%zu) = %p: usable size %zu is smaller", api, size, vp, usable);
  auto next = g.ranges.upper_bound(a);
  if (next != g.ranges.end() && next->first < a + usable)
    fail("%s(%zu) = %p (usable %zu) overlaps the live block at %#lx", api, size, vp, usable,
         static_cast<unsigned long>(next->first));
  if (next != g.ranges.begin() && std::prev(next)->second > a)
    fail("%s(%zu) = %p lies inside the live block %#lx..%#lx", api, size, vp,
         static_cast<unsigned long>(std::prev(next)->first), static_cast<unsigned long>(std::prev(next)->second));
  g.ranges.emplace(a, a + usable);
  g.live.push_back(Block{p, size, usable, align, origin});
  g.usable_sum += usable;
  uint64_t seed = seed_of(p, size);
  for_regions(usable, [&](size_t from, size_t to) { fill_range(p, from, to, seed); });
}

// Removes live[i] from the model (the caller frees it, or already did).
Block model_take(size_t i) {
  Block b = g.live[i];
  g.live[i] = g.live.back();
  g.live.pop_back();
  g.ranges.erase(reinterpret_cast<uintptr_t>(b.p));
  g.usable_sum -= b.usable;
  return b;
}

// ---- decoding -----------------------------------------------------------------------

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint32_t u16() {
    uint32_t lo = u8();
    return lo | (uint32_t{u8()} << 8);
  }
};

enum Kind : uint8_t {
  // allocations (kMalloc .. kNew)
  kMalloc, kCalloc, kRealloc, kReallocArray, kMemalign, kPosixMemalign, kAlignedAlloc, kValloc, kPvalloc, kNew,
  // the rest
  kFree, kFreeSized, kUsable, kFlush, kRelease, kReset, kCacheMax, kCheckAll, kImpossible,
  kSwitch,   // decoded by the main thread: the next operations run on thread a % n
  kRestart,  // decoded by the main thread: thread a % n exits and a new one replaces it
  kDrain,    // internal, end of input: frees live.size() / a blocks
};

// Opcode byte -> kind, by weight (the rest of the 256 values are malloc).
struct OpTable {
  Kind of[256];
  OpTable() {
    const std::pair<Kind, int> weights[] = {
        {kFree, 40},       {kFreeSized, 16}, {kCalloc, 12}, {kRealloc, 22}, {kReallocArray, 4},
        {kMemalign, 10},   {kPosixMemalign, 10}, {kAlignedAlloc, 6}, {kValloc, 3}, {kPvalloc, 3},
        {kNew, 8},         {kUsable, 4},     {kFlush, 3},   {kRelease, 2},  {kReset, 1},
        {kCacheMax, 2},    {kCheckAll, 2},   {kImpossible, 3}, {kSwitch, 36}, {kRestart, 3}};
    int i = 0;
    for (auto [k, w] : weights)
      for (int j = 0; j < w; ++j) of[i++] = k;
    while (i < 256) of[i++] = kMalloc;
  }
};
const OpTable kOps;

struct Op {
  Kind kind;
  size_t a = 0, b = 0;  // sizes, counts, alignments, indices: see run_op
};

// Sizes: mostly small, some around class, page and small/large boundaries,
// some large (up to 32 MiB).
size_t decode_size(Reader& r) {
  static const size_t kEdges[] = {16,        128,       256,      1024,    4096,    8 * KiB, 32 * KiB,
                                  64 * KiB, 128 * KiB, kMaxSmall, 512 * KiB, 1 * MiB, 2 * MiB, 4 * MiB};
  uint8_t c = r.u8();
  if (c < 128) return r.u8() | ((c & 7u) << 8);      // 0 .. 2047
  if (c < 192) return r.u16() | ((c & 3u) << 16);    // 0 .. 256 KiB - 1
  if (c < 248) {                                     // an edge +- 128
    long long v = static_cast<long long>(kEdges[c % (sizeof kEdges / sizeof kEdges[0])]) +
                  static_cast<int8_t>(r.u8());
    return v < 0 ? 0 : static_cast<size_t>(v);
  }
  if (c < 255) {
    size_t pages = r.u16() % 1024 + 1;
    return pages * 4096 + r.u8();                    // up to 4 MiB
  }
  return (r.u16() % 8192 + 1) * 4096;                // up to 32 MiB
}

// Alignments: powers of two 1 .. 8 MiB, and a few that are not (or are absurd).
size_t decode_align(Reader& r) {
  static const size_t kOdd[] = {0, 1, 2, 3, 8, 24, 48, 100, 4097, size_t{1} << 63, SIZE_MAX};
  uint8_t c = r.u8();
  if (c >= 240) return kOdd[c % (sizeof kOdd / sizeof kOdd[0])];
  return size_t{1} << (c % 24);
}

Op decode(Reader& r) {
  Op op;
  op.kind = kOps.of[r.u8()];
  switch (op.kind) {
    case kMalloc: case kValloc: case kPvalloc:
      op.a = decode_size(r);
      break;
    case kCalloc:
      op.a = r.u8() % 64 + 1;       // count
      op.b = decode_size(r) / op.a;  // each
      break;
    case kRealloc: case kReallocArray:
      op.a = r.u16();  // block index; 0xffff: realloc(NULL, ...)
      op.b = decode_size(r);
      break;
    case kMemalign: case kPosixMemalign: case kAlignedAlloc: case kNew:
      op.b = decode_align(r);
      op.a = decode_size(r);
      break;
    case kFree: case kFreeSized: case kUsable:
      op.a = r.u16();  // block index
      break;
    case kRelease: case kCacheMax: case kImpossible: case kSwitch: case kRestart:
      op.a = r.u8();
      break;
    default:
      break;
  }
  return op;
}

// ---- operations (on a worker thread; one at a time) ----------------------------------

size_t budget(size_t s) { return g.usable_sum + s > kLiveBudget ? s % (64 * KiB) : s; }

bool pick(size_t raw, size_t* i) {
  if (g.live.empty()) return false;
  *i = raw % g.live.size();
  return true;
}

bool power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// how: 0 free, 1 free_sized / free_aligned_sized, 2 realloc(p, 0)
void free_block(size_t i, int how) {
  Block b = g.live[i];
  check_block(b, "before free");
  model_take(i);
  switch (how) {
    case 0:
      am_free(b.p);
      break;
    case 1:
      if (b.align > 16)
        am_free_aligned_sized(b.p, b.align, b.size);
      else
        am_free_sized(b.p, b.size);
      break;
    default:
      errno = 0;
      if (am_realloc(b.p, 0) != nullptr) fail("realloc(%p, 0) did not return NULL", static_cast<void*>(b.p));
      break;
  }
}

void do_realloc(const Op& op, bool array) {
  size_t size = budget(op.b);
  size_t i;
  if (op.a == 0xffff || !pick(op.a, &i)) {
    model_add(array ? am_reallocarray(nullptr, 1, size) : am_realloc(nullptr, size), size, 0, Origin::kRealloc);
    return;
  }
  if (size == 0 && !array) return free_block(i, 2);
  Block old = g.live[i];
  check_block(old, "before realloc");
  void* p;
  if (array) {
    size_t count = size % 7 + 1, each = size / count;  // both factors used
    size = count * each;
    if (size == 0) return;  // reallocarray(p, 0, 0) is realloc(p, 0): covered above
    p = am_reallocarray(old.p, count, each);
  } else {
    p = am_realloc(old.p, size);
  }
  if (p == nullptr) fail("realloc(%p, %zu) returned NULL (errno %d)", static_cast<void*>(old.p), size, errno);
  model_take(i);
  // The prefix min(old size, new size) holds the old pattern.
  size_t keep = old.size < size ? old.size : size;
  uint64_t old_seed = seed_of(old.p, old.size);
  for_regions(old.usable, [&](size_t from, size_t to) {
    if (from >= keep) return;
    if (to > keep) to = keep;
    size_t bad = check_range(static_cast<uint8_t*>(p), from, to, old_seed);
    if (bad != SIZE_MAX)
      fail("realloc(%p, %zu) = %p lost the content at offset %zu (old: %s, size %zu, usable %zu)",
           static_cast<void*>(old.p), size, p, bad, origin_name(old.origin), old.size, old.usable);
  });
  model_add(p, size, 0, Origin::kRealloc);
}

constexpr size_t kAbsurdAlign = size_t{1} << 30;  // above: no heap can, glibc fails too

// memalign, posix_memalign, aligned_alloc, am_new with an alignment.
void do_aligned(const Op& op) {
  size_t align = op.b;
  size_t size = budget(op.a);
  if (align > 1 * MiB && size > 1 * MiB) size %= 1 * MiB;  // 8 MiB alignment x 32 MiB: too much
  switch (op.kind) {
    case kMemalign: {
      size_t rounded = 1;  // glibc rounds up to a power of two
      while (rounded < align && rounded != 0) rounded <<= 1;
      if (align > kAbsurdAlign) {
        errno = 0;
        void* p = am_memalign(align, size);
        if (p != nullptr) fail("memalign(%zu, %zu) = %p, want NULL", align, size, p);
        if (errno != ENOMEM && errno != EINVAL) fail("memalign(%zu, %zu): errno %d", align, size, errno);
        return;
      }
      model_add(am_memalign(align, size), size, rounded, Origin::kMemalign);
      return;
    }
    case kPosixMemalign: {
      void* const untouched = reinterpret_cast<void*>(0x5a5a);
      void* out = untouched;
      int rc = am_posix_memalign(&out, align, size);
      if (!power_of_two(align) || align % sizeof(void*) != 0) {
        if (rc != EINVAL || out != untouched)
          fail("posix_memalign(align %zu) = %d, out %p: want EINVAL, out untouched", align, rc, out);
        return;
      }
      if (align > kAbsurdAlign) {
        if (rc != ENOMEM || out != untouched)
          fail("posix_memalign(align %zu) = %d, out %p: want ENOMEM, out untouched", align, rc, out);
        return;
      }
      if (rc != 0) fail("posix_memalign(%zu, %zu) = %d", align, size, rc);
      model_add(out, size, align, Origin::kPosixMemalign);
      return;
    }
    case kAlignedAlloc: {
      errno = 0;
      void* p = am_aligned_alloc(align, size);
      if (!power_of_two(align)) {
        if (p != nullptr || errno != EINVAL) fail("aligned_alloc(%zu) = %p, errno %d: want EINVAL", align, p, errno);
        return;
      }
      if (align > kAbsurdAlign) {
        if (p != nullptr || errno != ENOMEM) fail("aligned_alloc(%zu) = %p, errno %d: want ENOMEM", align, p, errno);
        return;
      }
      model_add(p, size, align, Origin::kAlignedAlloc);
      return;
    }
    default: {  // am_new / am_new_nothrow: alignment 0 is the default
      size_t a = power_of_two(align) && align >= 16 && align <= 64 * KiB ? align : 0;
      void* p = (op.a & 1) ? am_new_nothrow(size, a) : am_new(size, a);
      model_add(p, size, a, Origin::kNew);
      return;
    }
  }
}

void expect_enomem(void* p, const char* what) {
  if (p != nullptr) fail("%s returned %p, want NULL", what, p);
  if (errno != ENOMEM) fail("%s: errno %d, want ENOMEM", what, errno);
}

void do_impossible(const Op& op) {
  size_t huge = SIZE_MAX - op.a * 4096;
  errno = 0;
  switch (op.a % 9) {
    case 0: expect_enomem(am_malloc(huge), "malloc(~0)"); break;
    case 1: expect_enomem(am_calloc(size_t{1} << 33, size_t{1} << 33), "calloc(2^33, 2^33)"); break;
    case 2: expect_enomem(am_calloc(1, huge), "calloc(1, ~0)"); break;
    case 3: expect_enomem(am_memalign(64, huge), "memalign(64, ~0)"); break;
    case 4: {
      void* const untouched = reinterpret_cast<void*>(0x5a5a);
      void* out = untouched;
      int rc = am_posix_memalign(&out, 4096, huge);
      if (rc != ENOMEM || out != untouched)
        fail("posix_memalign(4096, ~0) = %d, out %p: want ENOMEM, out untouched", rc, out);
      break;
    }
    case 5: expect_enomem(am_pvalloc(huge), "pvalloc(~0)"); break;
    case 6: expect_enomem(am_new_nothrow(huge, 0), "am_new_nothrow(~0)"); break;
    case 7: {
      bool threw = false;
      try {
        am_new(huge, 64);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      if (!threw) fail("am_new(~0, 64) did not throw std::bad_alloc");
      break;
    }
    default: {  // a failed realloc leaves the block alone
      size_t i;
      if (!pick(op.a, &i)) break;
      const Block& b = g.live[i];
      if (op.a & 16)
        expect_enomem(am_realloc(b.p, huge), "realloc(p, ~0)");
      else
        expect_enomem(am_reallocarray(b.p, size_t{1} << 40, size_t{1} << 40), "reallocarray(p, 2^40, 2^40)");
      check_block(b, "after a failed realloc");
      break;
    }
  }
}

const char* const kKindNames[] = {
    "malloc", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign", "aligned_alloc", "valloc",
    "pvalloc", "new", "free", "free_sized", "usable", "flush", "release", "reset", "cache_max", "check_all",
    "impossible", "switch", "restart", "drain"};
const bool kTrace = getenv("HEAP_FUZZ_TRACE") != nullptr;  // one line per operation on stderr
const bool kStats = getenv("HEAP_FUZZ_STATS") != nullptr;  // the heap's figures after each input

void run_op(const Op& op) {
  ++g.ops;
  if (kTrace)
    fprintf(stderr, "heap_fuzz: op %lu: %s a=%zu b=%zu (live %zu, %zu bytes)\n", g.ops, kKindNames[op.kind], op.a,
            op.b, g.live.size(), g.usable_sum);
  size_t i;
  switch (op.kind) {
    case kMalloc: {
      size_t s = budget(op.a);
      model_add(am_malloc(s), s, 0, Origin::kMalloc);
      break;
    }
    case kCalloc: {
      size_t n = op.a, each = budget(op.b * op.a) / op.a;
      uint8_t* p = static_cast<uint8_t*>(am_calloc(n, each));
      if (p == nullptr) fail("calloc(%zu, %zu) returned NULL", n, each);
      for_regions(n * each, [&](size_t from, size_t to) {
        size_t k = first_nonzero(p, from, to);
        if (k != SIZE_MAX) fail("calloc(%zu, %zu) = %p: byte %zu is %#x", n, each, static_cast<void*>(p), k, p[k]);
      });
      model_add(p, n * each, 0, Origin::kCalloc);
      break;
    }
    case kRealloc: do_realloc(op, false); break;
    case kReallocArray: do_realloc(op, true); break;
    case kMemalign: case kPosixMemalign: case kAlignedAlloc: case kNew: do_aligned(op); break;
    case kValloc: {
      size_t s = budget(op.a);
      model_add(am_valloc(s), s, kOsPage, Origin::kValloc);
      break;
    }
    case kPvalloc: {  // rounds up to whole pages, one page for 0
      size_t s = budget(op.a);
      size_t want = s == 0 ? kOsPage : (s + kOsPage - 1) & ~(kOsPage - 1);
      model_add(am_pvalloc(s), want, kOsPage, Origin::kPvalloc);
      break;
    }
    case kFree:
      if (pick(op.a, &i)) free_block(i, 0);
      else am_free(nullptr);
      break;
    case kFreeSized:
      if (pick(op.a, &i)) free_block(i, 1);
      else am_free_sized(nullptr, 0);
      break;
    case kUsable:
      if (pick(op.a, &i)) check_block(g.live[i], "usable");
      if (am_malloc_usable_size(nullptr) != 0) fail("malloc_usable_size(NULL) != 0");
      break;
    case kFlush: am_thread_cache_flush(); break;
    case kRelease:
      if (op.a & 1) am_release_free_memory();
      else am_malloc_trim(0);
      break;
    case kReset: am_reset(); break;
    case kCacheMax: {
      static const long long kValues[] = {0, 4096, 64 * 1024, 1 << 20, 2 << 20};
      long long v = kValues[op.a % 5];
      if (int rc = am_option_set("AMMALLOC_THREAD_CACHE_MAX", v))
        fail("am_option_set(AMMALLOC_THREAD_CACHE_MAX, %lld) = %d", v, rc);
      break;
    }
    case kCheckAll:
      for (const Block& b : g.live) check_block(b, "check-all");
      break;
    case kImpossible: do_impossible(op); break;
    case kDrain: {  // alternates free and free_sized
      size_t n = (g.live.size() + op.a - 1) / op.a;
      for (size_t k = 0; k < n && !g.live.empty(); ++k) free_block(g.live.size() - 1, static_cast<int>(k & 1));
      break;
    }
    default:
      break;
  }
  check_stats("an operation");
}

// ---- the baton: real threads, one at a time --------------------------------------------

struct Pool {
  std::mutex m;
  std::condition_variable cv_worker[kMaxThreads], cv_main;
  int turn = -1;  // the worker whose turn it is; -1: the main thread's
  const std::vector<Op>* ops = nullptr;
  bool quit[kMaxThreads] = {};
  std::thread th[kMaxThreads];
};
Pool& pool = *new Pool;  // never destroyed: joinable threads at exit() would terminate

void worker_main(int id) {
  std::unique_lock<std::mutex> lk(pool.m);
  for (;;) {
    pool.cv_worker[id].wait(lk, [&] { return pool.turn == id; });
    bool quit = pool.quit[id];
    if (!quit) {
      lk.unlock();
      for (const Op& op : *pool.ops) run_op(op);
      lk.lock();
    }
    pool.turn = -1;
    pool.cv_main.notify_one();
    if (quit) return;
  }
}

void run_on(int t, const std::vector<Op>& ops) {
  std::unique_lock<std::mutex> lk(pool.m);
  pool.ops = &ops;
  pool.turn = t;
  pool.cv_worker[t].notify_one();
  pool.cv_main.wait(lk, [] { return pool.turn == -1; });
}

void start_worker(int t) {
  pool.quit[t] = false;
  pool.th[t] = std::thread(worker_main, t);
}

// Thread t exits (its cache goes back through the thread-exit path) and a new
// thread takes its place.
void restart_worker(int t) {
  {
    std::lock_guard<std::mutex> lk(pool.m);
    pool.quit[t] = true;
  }
  static const std::vector<Op> kNone;
  run_on(t, kNone);
  pool.th[t].join();
  check_stats("a thread exit");
  start_worker(t);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Read once, at the allocator's first call. See the header comment.
  setenv("AMMALLOC_SCAVENGER", "0", 1);
  setenv("AMMALLOC_GC_INTERVAL_MS", "0", 1);
  for (int t = 0; t < kMaxThreads; ++t) start_worker(t);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ++g.inputs;
  if (!g.have_baseline) {
    g.baseline = prop("generic.current_allocated_bytes");
    g.have_baseline = true;
  }
  check_stats("the previous input");  // it freed everything: back at the baseline
  am_option_set("AMMALLOC_THREAD_CACHE_MAX", 2 << 20);

  Reader r{data, size};
  int nthreads = 1 + r.u8() % kMaxThreads;
  int cur = 0;
  std::vector<Op> run;
  auto flush_run = [&] {
    if (!run.empty()) run_on(cur, run);
    run.clear();
  };
  while (!r.empty()) {
    Op op = decode(r);
    if (kTrace && (op.kind == kSwitch || op.kind == kRestart))
      fprintf(stderr, "heap_fuzz: %s %zu\n", kKindNames[op.kind], op.a % nthreads);
    if (op.kind == kSwitch) {
      flush_run();
      cur = static_cast<int>(op.a % nthreads);
    } else if (op.kind == kRestart) {
      flush_run();
      restart_worker(static_cast<int>(op.a % nthreads));
    } else if (op.kind <= kNew && g.live.size() + run.size() >= kMaxLive) {
      continue;  // keeps the model small; frees still happen
    } else {
      run.push_back(op);
    }
  }
  flush_run();

  // Free everything, a share on each thread (most frees are cross-thread), then
  // empty the caches so that the next input starts alike.
  for (int t = 0; t < nthreads; ++t) run_on(t, std::vector<Op>{Op{kDrain, static_cast<size_t>(nthreads - t)}});
  if (!g.live.empty()) fail("%zu blocks left after the drain", g.live.size());
  for (int t = 0; t < nthreads; ++t) run_on(t, std::vector<Op>{Op{kFlush}});
  check_stats("the drain");
  if (kStats) {  // the heap after each input, everything freed
    long pages = 0, resident = 0;
    if (FILE* f = fopen("/proc/self/statm", "r")) {
      if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
      fclose(f);
    }
    fprintf(stderr, "heap_fuzz: input %lu: process RSS %ld KiB; ammalloc: physical %zu, heap %zu, page heap free %zu, "
            "released %zu, central %zu, transfer %zu, thread caches %zu, metadata %zu\n", g.inputs, resident * 4,
            prop("generic.total_physical_bytes"), prop("generic.heap_size"),
            prop("ammalloc.pageheap_free_bytes"), prop("ammalloc.pageheap_unmapped_bytes"),
            prop("ammalloc.central_cache_free_bytes"), prop("ammalloc.transfer_cache_free_bytes"),
            prop("ammalloc.thread_cache_free_bytes"), prop("ammalloc.metadata_bytes"));
  }
  return 0;
}

// Transparent huge pages (see hugepage_map.h).
#include "heap/hugepage_map.h"

#include <atomic>

#include "base/log.h"
#include "core/meta_arena.h"
#include "core/options.h"
#include "os/os.h"

namespace am {
namespace {

// --- mode -----------------------------------------------------------------------

enum : int { kUndecided = 0, kOff = 1, kOn = 2 };
constinit std::atomic<int> g_thp{kUndecided};
constinit std::atomic<bool> g_kernel_always{false};
constinit std::atomic<int> g_kernel_mode{-1};
// Small-heap deferral (see hugepage_map.h): bytes mapped so far, and whether the
// heap has grown past kThpMinHeapBytes (then every region is advised).
constinit size_t g_thp_mapped = 0;  // page-heap lock
constinit std::atomic<bool> g_thp_active{false};

bool starts_with(const char* s, const char* prefix) {
  while (*prefix && *s == *prefix) ++s, ++prefix;
  return *prefix == '\0';
}

// --- the 2 MiB map ----------------------------------------------------------------

constexpr size_t kHpBits = kAddressBits - kHugePageShift;  // 27
constexpr size_t kHpLeafBits = 14;
constexpr size_t kHpRootBits = kHpBits - kHpLeafBits;  // 13
constexpr size_t kHpLeafSize = size_t{1} << kHpLeafBits;
constexpr uint16_t kHeapBit = 0x8000;
constexpr uint16_t kDehugeBit = 0x4000;
// First and last range of a region with a reservation of its own
// (hugepage_mark_own_region).
constexpr uint16_t kOwnStartBit = 0x2000;
constexpr uint16_t kOwnEndBit = 0x1000;
constexpr uint16_t kLiveMask = 0x0fff;
static_assert(kPagesPerHugePage <= kLiveMask, "live page count must fit 12 bits");

struct HpLeaf {
  uint16_t entry[kHpLeafSize];
};

constinit std::atomic<HpLeaf*> g_hp_root[size_t{1} << kHpRootBits] = {};

HpLeaf* leaf_of(uintptr_t hp) {
  if (hp >> kHpBits) return nullptr;
  return g_hp_root[hp >> kHpLeafBits].load(std::memory_order_acquire);
}

uint16_t* entry_of(uintptr_t hp) {
  HpLeaf* leaf = leaf_of(hp);
  return leaf ? &leaf->entry[hp & (kHpLeafSize - 1)] : nullptr;
}

}  // namespace

ThpKernelMode thp_kernel_mode() {
  char buf[128];
  if (os::read_small_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) <= 0)
    return ThpKernelMode::kUnsupported;
  // "always [madvise] never": the bracketed word is in force.
  for (const char* p = buf; *p; ++p) {
    if (*p != '[') continue;
    if (starts_with(p + 1, "always]")) return ThpKernelMode::kAlways;
    if (starts_with(p + 1, "madvise]")) return ThpKernelMode::kMadvise;
    if (starts_with(p + 1, "never]")) return ThpKernelMode::kNever;
  }
  return ThpKernelMode::kUnsupported;
}

const char* thp_kernel_mode_name(ThpKernelMode m) {
  switch (m) {
    case ThpKernelMode::kAlways: return "always";
    case ThpKernelMode::kMadvise: return "madvise";
    case ThpKernelMode::kNever: return "never";
    default: return "unsupported";
  }
}

bool thp_enabled() {
  int s = g_thp.load(std::memory_order_acquire);
  if (AM_LIKELY(s != kUndecided)) return s == kOn;
  // The kernel's setting, read once (sysfs, under the page-heap lock).
  int cached = g_kernel_mode.load(std::memory_order_relaxed);
  ThpKernelMode k = cached >= 0 ? static_cast<ThpKernelMode>(cached) : thp_kernel_mode();
  g_kernel_mode.store(static_cast<int>(k), std::memory_order_relaxed);
  bool on = option(kOptThp) != 0 && (k == ThpKernelMode::kAlways || k == ThpKernelMode::kMadvise);
  g_kernel_always.store(k == ThpKernelMode::kAlways, std::memory_order_relaxed);
  // Before the options are read (a region mapped that early), the default
  // decides for now, without latching.
  if (!options_loaded()) return on;
  // Racing first callers compute the same answer; the first store wins.
  int expected = kUndecided;
  g_thp.compare_exchange_strong(expected, on ? kOn : kOff, std::memory_order_acq_rel);
  return g_thp.load(std::memory_order_acquire) == kOn;
}

namespace {

// Advises every heap range mapped so far MADV_HUGEPAGE, in runs of adjacent
// ranges (one madvise per region, more or less). Once, when the heap first
// grows past kThpMinHeapBytes: the map is sparse and small then.
void advise_all_heap_ranges() {
  uintptr_t run_first = 0, run_end = 0;
  auto flush = [&] {
    if (run_end != run_first)
      os::advise_hugepage(reinterpret_cast<void*>(run_first << kHugePageShift), (run_end - run_first) << kHugePageShift);
  };
  for (size_t i = 0; i < (size_t{1} << kHpRootBits); ++i) {
    HpLeaf* leaf = g_hp_root[i].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;
    for (size_t j = 0; j < kHpLeafSize; ++j) {
      if (!(leaf->entry[j] & kHeapBit)) continue;
      uintptr_t hp = (i << kHpLeafBits) | j;
      if (hp != run_end) {
        flush();
        run_first = hp;
      }
      run_end = hp + 1;
    }
  }
  flush();
}

}  // namespace

bool thp_active() { return g_thp_active.load(std::memory_order_relaxed); }

void thp_advise_region(void* p, size_t bytes) {
  if (!thp_enabled()) {
    if (g_kernel_always.load(std::memory_order_relaxed)) os::advise_nohugepage(p, bytes);
    return;
  }
  g_thp_mapped += bytes;
  if (thp_active()) {
    os::advise_hugepage(p, bytes);
  } else if (g_thp_mapped >= kThpMinHeapBytes) {
    // The region is in the map already (hugepage_map_region comes first).
    g_thp_active.store(true, std::memory_order_relaxed);
    advise_all_heap_ranges();
  } else if (g_kernel_always.load(std::memory_order_relaxed)) {
    os::advise_nohugepage(p, bytes);  // [always] would back it with huge pages now
  }
}

bool hugepage_map_prepare(uintptr_t start, size_t bytes) {
  uintptr_t first = start >> kHugePageShift, n = bytes >> kHugePageShift;
  if (n == 0) return true;
  if ((first + n - 1) >> kHpBits) return false;
  for (uintptr_t i = first >> kHpLeafBits; i <= (first + n - 1) >> kHpLeafBits; ++i) {
    std::atomic<HpLeaf*>& slot = g_hp_root[i];
    if (slot.load(std::memory_order_relaxed) == nullptr) {
      // Refused: leaves made before this one stay (all zero: "not heap").
      auto* leaf = static_cast<HpLeaf*>(meta_alloc_pages(sizeof(HpLeaf)));
      if (leaf == nullptr) return false;
      slot.store(leaf, std::memory_order_release);
    }
  }
  return true;
}

void hugepage_map_region(uintptr_t start, size_t bytes) {
  uintptr_t first = start >> kHugePageShift, n = bytes >> kHugePageShift;
  for (uintptr_t hp = first; hp < first + n; ++hp) {
    uint16_t* e = entry_of(hp);
    AM_DCHECK(e != nullptr);
    __atomic_store_n(e, static_cast<uint16_t>(kHeapBit), __ATOMIC_RELAXED);
  }
}

void hugepage_note_live(uintptr_t first_page, size_t pages, int delta) {
  uintptr_t p = first_page, end = first_page + pages;
  while (p < end) {
    uintptr_t hp = hugepage_of_page(p);
    uintptr_t next = first_page_of_hugepage(hp + 1);
    uint16_t n = static_cast<uint16_t>((next < end ? next : end) - p);
    uint16_t* e = entry_of(hp);
    AM_DCHECK(e != nullptr && (*e & kHeapBit));
    AM_DCHECK(delta > 0 || (*e & kLiveMask) >= n);
    uint16_t e2 = static_cast<uint16_t>(delta > 0 ? *e + n : *e - n);
    __atomic_store_n(e, e2, __ATOMIC_RELAXED);  // the smaps reader reads the heap bit
    p = next;
  }
}

uint32_t hugepage_live_pages(uintptr_t hp) {
  uint16_t* e = entry_of(hp);
  return e ? (*e & kLiveMask) : 0;
}

bool hugepage_any_live(uintptr_t first_page, size_t pages) {
  uintptr_t last = hugepage_of_page(first_page + pages - 1);
  for (uintptr_t hp = hugepage_of_page(first_page); hp <= last; ++hp)
    if (hugepage_live_pages(hp) != 0) return true;
  return false;
}

bool hugepage_set_dehugified(uintptr_t hp, bool on) {
  uint16_t* e = entry_of(hp);
  if (e == nullptr) return false;
  bool old = (*e & kDehugeBit) != 0;
  __atomic_store_n(e, static_cast<uint16_t>(on ? *e | kDehugeBit : *e & ~kDehugeBit), __ATOMIC_RELAXED);
  return old;
}

size_t hugepage_take_dense_dehugified(uint32_t min_live, uintptr_t* out, size_t max) {
  // The map is sparse: a leaf covers 32 GiB, a heap spans a few of them.
  size_t n = 0;
  for (size_t i = 0; i < (size_t{1} << kHpRootBits) && n < max; ++i) {
    HpLeaf* leaf = g_hp_root[i].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;
    for (size_t j = 0; j < kHpLeafSize && n < max; ++j) {
      uint16_t e = leaf->entry[j];
      if ((e & kDehugeBit) && (e & kLiveMask) >= min_live) {
        __atomic_store_n(&leaf->entry[j], static_cast<uint16_t>(e & ~kDehugeBit), __ATOMIC_RELAXED);
        out[n++] = (i << kHpLeafBits) | j;
      }
    }
  }
  return n;
}

bool hugepage_is_heap(uintptr_t addr) {
  uint16_t* e = entry_of(addr >> kHugePageShift);
  return e != nullptr && (__atomic_load_n(e, __ATOMIC_RELAXED) & kHeapBit);
}

void hugepage_mark_own_region(uintptr_t start, size_t bytes) {
  uintptr_t first = start >> kHugePageShift, last = (start + bytes - 1) >> kHugePageShift;
  __atomic_fetch_or(entry_of(first), kOwnStartBit, __ATOMIC_RELAXED);
  __atomic_fetch_or(entry_of(last), kOwnEndBit, __ATOMIC_RELAXED);
}

bool hugepage_own_boundary(uintptr_t left_page) {
  uintptr_t l = hugepage_of_page(left_page), r = hugepage_of_page(left_page + 1);
  if (l == r) return false;
  uint16_t* el = entry_of(l);
  uint16_t* er = entry_of(r);
  return (el && (__atomic_load_n(el, __ATOMIC_RELAXED) & kOwnEndBit)) ||
         (er && (__atomic_load_n(er, __ATOMIC_RELAXED) & kOwnStartBit));
}

void hugepage_unmap_region(uintptr_t start, size_t bytes) {
  uintptr_t first = start >> kHugePageShift, n = bytes >> kHugePageShift;
  for (uintptr_t hp = first; hp < first + n; ++hp)
    if (uint16_t* e = entry_of(hp)) __atomic_store_n(e, uint16_t{0}, __ATOMIC_RELAXED);
}

}  // namespace am

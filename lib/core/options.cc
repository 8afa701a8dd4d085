// Options table and parser (see options.h).
#include "core/options.h"

#include <errno.h>

#include "base/log.h"
#include "os/os.h"

namespace am {

constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

constexpr int64_t kHour = 3600 * 1000;

// The meson option `harden` makes AMMALLOC_HARDEN default to 1.
#ifndef AMMALLOC_CFG_HARDEN
#define AMMALLOC_CFG_HARDEN 0
#endif

// AMMALLOC_NUMA's values, in the order of numa_topology.h's NumaMode.
constexpr const char* kNumaChoices[] = {"off", "local", "interleave", nullptr};

const OptionDef kOptionTable[kNumOptions] = {
    {"AMMALLOC_THREAD_CACHE_MAX", OptionType::kBytes, 2 * kMiB, 0, 1 * kGiB, true,
     "bytes one thread may keep cached across all size classes"},
    {"AMMALLOC_THREAD_CACHE_TOTAL", OptionType::kBytes, 32 * kMiB, 0, 64 * kGiB, true,
     "bytes all thread caches together may keep cached"},
    {"AMMALLOC_STATS_ON_EXIT", OptionType::kBool, 0, 0, 1, false,
     "print the statistics report to stderr when the process exits"},
    {"AMMALLOC_SCAVENGER", OptionType::kBool, 1, 0, 1, true,
     "background release of idle free pages to the OS (madvise)"},
    {"AMMALLOC_SCAVENGE_INTERVAL_MS", OptionType::kInt, 1000, 10, kHour, true,
     "milliseconds between scavenger passes"},
    {"AMMALLOC_RELEASE_DELAY_MS", OptionType::kInt, 5000, 0, kHour, true,
     "free pages idle this long (ms) are returned to the OS"},
    {"AMMALLOC_GC_INTERVAL_MS", OptionType::kInt, 5000, 0, kHour, true,
     "caches of threads idle this long (ms) are reclaimed; 0 turns the GC off"},
    {"AMMALLOC_MEMORY_LIMIT", OptionType::kBytes, 0, 0, int64_t{1} << 46, true,
     "resident heap bytes allowed; 0 = no limit (am_set_memory_limit adds a callback)"},
    {"AMMALLOC_TRANSFER_CACHE", OptionType::kBool, 1, 0, 1, false,
     "lock-free exchange of whole batches between threads in front of the central cache"},
    {"AMMALLOC_THP", OptionType::kBool, 1, 0, 1, false,
     "transparent huge pages for the heap (madvise); in effect where the kernel's THP mode is always or madvise"},
    {"AMMALLOC_NUMA", OptionType::kChoice, 1, 0, 2, false,
     "NUMA placement: local (per-node page heaps, regions bound to their node), interleave, or off",
     kNumaChoices},
    {"AMMALLOC_NUMA_FAKE_NODES", OptionType::kInt, 0, 0, 64, false,
     "testing: with NUMA local, behave as if there were this many nodes; 0 = the real topology"},
    {"AMMALLOC_PROFILE_SAMPLE", OptionType::kBytes, 512 * kKiB, 0, 1 * kGiB, true,
     "mean bytes between heap-profile samples (exponential intervals); 0 = no sampling"},
    {"AMMALLOC_HEAP_PROFILE", OptionType::kString, 0, 0, 0, false,
     "file prefix: profile the heap, write <prefix>.<pid>.<seq>.heap (at exit, interval, signal)"},
    {"AMMALLOC_HEAP_PROFILE_INTERVAL", OptionType::kBytes, 0, 0, int64_t{1} << 46, true,
     "also write a heap profile every this many bytes allocated; 0 = off"},
    {"AMMALLOC_HEAP_PROFILE_SIGNAL", OptionType::kInt, 0, 0, 64, false,
     "write a heap profile when this signal arrives; 0 = none"},
    {"AMMALLOC_STATS_SIGNAL", OptionType::kInt, 0, 0, 64, false,
     "print the statistics report to stderr when this signal arrives; 0 = none"},
    {"AMMALLOC_HEAP_CHECK", OptionType::kBool, 0, 0, 1, false,
     "leak checker: record every allocation, report unreachable blocks at exit"},
    {"AMMALLOC_HEAP_CHECK_EXIT_CODE", OptionType::kInt, 1, 0, 255, false,
     "exit status when the leak check finds leaks; 0 = keep the program's"},
    {"AMMALLOC_HARDEN", OptionType::kBool, AMMALLOC_CFG_HARDEN, 0, 1, false,
     "encoded free lists, double-free and use-after-free detection on small objects (default: meson option harden)"},
    {"AMMALLOC_GUARD_PAGES", OptionType::kBool, 0, 0, 1, true,
     "an inaccessible guard page after every large allocation (overruns fault)"},
    {"AMMALLOC_BACKGROUND_THREAD", OptionType::kBool, 1, 0, 1, false,
     "a background thread for scavenging and the GC once the program has a second thread; 0 = never"},
};

namespace {
constinit int64_t g_values[kNumOptions] = {};
constinit bool g_loaded = false;

bool equals(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}
}  // namespace

bool option_parse(const OptionDef& def, const char* text, int64_t* out) {
  int64_t v = 0;
  if (def.type == OptionType::kString) {  // any text; options_load stores the string itself
    *out = 0;
    return true;
  }
  if (def.type == OptionType::kChoice && def.choices != nullptr) {
    for (int64_t i = 0; def.choices[i] != nullptr; ++i) {
      if (equals(text, def.choices[i]) && i >= def.min && i <= def.max) {
        *out = i;
        return true;
      }
    }
  }
  if (def.type == OptionType::kBool) {
    if (equals(text, "1") || equals(text, "true") || equals(text, "yes") || equals(text, "on"))
      v = 1;
    else if (equals(text, "0") || equals(text, "false") || equals(text, "no") || equals(text, "off"))
      v = 0;
    else
      return false;
  } else {
    const char* p = text;
    bool neg = *p == '-';
    if (neg) ++p;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; ++p) {
      if (v > (INT64_MAX - 9) / 10) return false;
      v = v * 10 + (*p - '0');
    }
    if (def.type == OptionType::kBytes && *p) {
      int64_t mult = *p == 'k' || *p == 'K' ? kKiB : *p == 'm' || *p == 'M' ? kMiB : *p == 'g' || *p == 'G' ? kGiB : 0;
      if (mult == 0 || p[1] != '\0' || v > INT64_MAX / mult) return false;
      v *= mult;
      ++p;
    }
    if (*p != '\0') return false;
    if (neg) v = -v;
  }
  if (v < def.min || v > def.max) return false;
  *out = v;
  return true;
}

void options_load() {
  if (g_loaded) return;
  for (int i = 0; i < kNumOptions; ++i) {
    const OptionDef& def = kOptionTable[i];
    g_values[i] = def.def;
    const char* text = os::get_env(def.name);
    if (text == nullptr) continue;
    if (def.type == OptionType::kString) {  // the environment string itself: never copied
      g_values[i] = static_cast<int64_t>(reinterpret_cast<intptr_t>(text));
      continue;
    }
    if (!option_parse(def, text, &g_values[i])) {
      char buf[256];
      TextBuffer t(buf, sizeof buf);
      t.str(def.name).str("='").str(text).str("' is malformed or out of range [").i64(def.min);
      t.str(", ").i64(def.max).str("]; using the default ").i64(def.def);
      log_warning(buf);
    }
  }
  g_loaded = true;
}

bool options_loaded() { return __atomic_load_n(&g_loaded, __ATOMIC_ACQUIRE); }

void option_store(OptionId id, int64_t value) { __atomic_store_n(&g_values[id], value, __ATOMIC_RELAXED); }

int64_t option(OptionId id) {
  return g_loaded ? __atomic_load_n(&g_values[id], __ATOMIC_RELAXED) : kOptionTable[id].def;
}

const char* option_string(OptionId id) {
  if (kOptionTable[id].type != OptionType::kString) return nullptr;
  return reinterpret_cast<const char*>(static_cast<intptr_t>(option(id)));
}

int option_find(const char* name) {
  if (name == nullptr) return -1;
  for (int i = 0; i < kNumOptions; ++i)
    if (equals(kOptionTable[i].name, name)) return i;
  return -1;
}

int option_set(const char* name, int64_t value) {
  int i = option_find(name);
  if (i < 0) return EINVAL;
  const OptionDef& def = kOptionTable[i];
  if (!def.runtime) return EPERM;
  if (value < def.min || value > def.max) return EINVAL;
  option_store(static_cast<OptionId>(i), value);
  return 0;
}

}  // namespace am

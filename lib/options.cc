// Options table and parser (see options.h).
#include "options.h"

#include <errno.h>

#include "base/log.h"
#include "page_heap.h"
#include "thread_cache.h"
#include "os/os.h"

namespace am {

constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

constexpr int64_t kHour = 3600 * 1000;

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
};

namespace {
constinit int64_t g_values[kNumOptions] = {};
constinit bool g_loaded = false;

bool equals(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}
}  // namespace

// Options whose value lives in another module's state as well.
void apply_option(OptionId id) {
  switch (id) {
    case kOptThreadCacheMax:
    case kOptThreadCacheTotal:
      thread_cache_set_limits(static_cast<size_t>(option(kOptThreadCacheMax)),
                              static_cast<size_t>(option(kOptThreadCacheTotal)));
      break;
    case kOptMemoryLimit:
      page_heap_set_limit(static_cast<size_t>(option(kOptMemoryLimit)));
      break;
    default:  // read where used
      break;
  }
}

bool option_parse(const OptionDef& def, const char* text, int64_t* out) {
  int64_t v = 0;
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
    if (!option_parse(def, text, &g_values[i])) {
      char buf[256];
      TextBuffer t(buf, sizeof buf);
      t.str(def.name).str("='").str(text).str("' is malformed or out of range [").i64(def.min);
      t.str(", ").i64(def.max).str("]; using the default ").i64(def.def);
      log_warning(buf);
    }
  }
  g_loaded = true;
  apply_option(kOptThreadCacheMax);
  apply_option(kOptMemoryLimit);
}

int64_t option(OptionId id) {
  return g_loaded ? __atomic_load_n(&g_values[id], __ATOMIC_RELAXED) : kOptionTable[id].def;
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
  __atomic_store_n(&g_values[i], value, __ATOMIC_RELAXED);
  apply_option(static_cast<OptionId>(i));
  return 0;
}

}  // namespace am

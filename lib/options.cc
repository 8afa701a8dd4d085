// Options table and parser (see options.h).
#include "options.h"

#include "base/log.h"
#include "os/os.h"

namespace am {

constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

const OptionDef kOptionTable[kNumOptions] = {
    {"AMMALLOC_THREAD_CACHE_MAX", OptionType::kBytes, 2 * kMiB, 0, 1 * kGiB,
     "bytes one thread may keep cached across all size classes"},
    {"AMMALLOC_THREAD_CACHE_TOTAL", OptionType::kBytes, 32 * kMiB, 0, 64 * kGiB,
     "bytes all thread caches together may keep cached"},
    {"AMMALLOC_STATS_ON_EXIT", OptionType::kBool, 0, 0, 1,
     "print the statistics report to stderr when the process exits"},
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
}

int64_t option(OptionId id) { return g_loaded ? g_values[id] : kOptionTable[id].def; }

}  // namespace am

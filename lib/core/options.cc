// Options table and parser (see options.h).
#include "core/options.h"

#include <errno.h>
#include <signal.h>

#include "base/log.h"
#include "os/os.h"

namespace am {

constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024, kTiB = kGiB * 1024;

constexpr int64_t kHour = 3600 * 1000;

// The meson option `harden` makes AMMALLOC_HARDEN default to 1.
#ifndef AMMALLOC_CFG_HARDEN
#define AMMALLOC_CFG_HARDEN 0
#endif

// AMMALLOC_NUMA's values, in the order of numa_topology.h's NumaMode.
constexpr const char* kNumaChoices[] = {"off", "local", "interleave", nullptr};
// AMMALLOC_STATS_FORMAT's values (observe/stats.h).
constexpr const char* kStatsFormatChoices[] = {"text", "json", nullptr};

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
    {"AMMALLOC_HEAP_PROFILE_SIGNAL", OptionType::kSignal, 0, 0, 64, false,
     "write a heap profile when this signal arrives; 0 = none"},
    {"AMMALLOC_STATS_SIGNAL", OptionType::kSignal, 0, 0, 64, false,
     "print the statistics report to stderr when this signal arrives; 0 = none"},
    {"AMMALLOC_HEAP_CHECK", OptionType::kBool, 0, 0, 1, false,
     "leak checker: record every allocation, report unreachable blocks at exit"},
    {"AMMALLOC_HEAP_CHECK_EXIT_CODE", OptionType::kInt, 1, 0, 255, false,
     "exit status when the leak check finds leaks; 0 = keep the program's"},
    {"AMMALLOC_HARDEN", OptionType::kBool, AMMALLOC_CFG_HARDEN, 0, 1, false,
     "encoded free lists, double-free and use-after-free detection on small objects (default: meson option harden)"},
    {"AMMALLOC_GUARD_PAGES", OptionType::kBool, 0, 0, 1, true,
     "an inaccessible guard page after every large allocation (overruns fault)"},
    {"AMMALLOC_VERBOSE", OptionType::kBool, 0, 0, 1, false,
     "at start-up, print a banner (version, build options, THP/NUMA mode) and every option with its source to stderr"},
    {"AMMALLOC_STATS_FORMAT", OptionType::kChoice, 0, 0, 1, true,
     "format of the statistics report at exit and on the signal: text or json", kStatsFormatChoices},
    {"AMMALLOC_STATS_FILE", OptionType::kString, 0, 0, 0, false,
     "write the statistics reports (exit, signal, malloc_stats) to this file (appended) instead of stderr"},
    {"AMMALLOC_PROFILE_STACK_DEPTH", OptionType::kInt, 128, 1, 256, false,
     "frames kept per heap-profile and leak-checker stack"},
    {"AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL", OptionType::kBytes, 100 * kMiB, 0, int64_t{1} << 46, true,
     "write a heap profile when bytes in use reach a new peak this far above the last such profile; 0 = off"},
    {"AMMALLOC_HEAP_PROFILE_TIME_INTERVAL", OptionType::kInt, 0, 0, 86400, true,
     "write a heap profile every this many seconds; 0 = off"},
    {"AMMALLOC_STARTED_FILE", OptionType::kString, 0, 0, 0, false,
     "at start-up, append 'ammalloc <version> pid <pid> <exe>' to this file (ammalloc-run's proof that the preload worked)"},
    {"AMMALLOC_BACKGROUND_THREAD", OptionType::kBool, 1, 0, 1, false,
     "a background thread for scavenging and the GC once the program has a second thread; 0 = never"},
    {"AMMALLOC_LARGE_CACHE", OptionType::kBytes, 64 * kMiB, 0, int64_t{1} << 40, true,
     "bytes of freed large objects (each up to 16 MiB) kept whole for the next request of their size; 0 = off"},
};

namespace options_detail {
constinit int64_t g_values[kNumOptions] = {};
constinit bool g_loaded = false;
}  // namespace options_detail
using options_detail::g_loaded;
using options_detail::g_values;

namespace {
constinit uint8_t g_sources[kNumOptions] = {};  // OptionSource values (atomics want an integer)

bool equals(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Sizes: digits, an optional fraction, an optional K/M/G/T, then optionally
// "B" or "iB" (any case). Non-negative; at most 9 fraction digits.
bool parse_bytes(const char* p, int64_t* out) {
  if (*p < '0' || *p > '9') return false;
  int64_t whole = 0;
  for (; *p >= '0' && *p <= '9'; ++p) {
    if (whole > (INT64_MAX - 9) / 10) return false;
    whole = whole * 10 + (*p - '0');
  }
  int64_t frac = 0, scale = 1;
  if (*p == '.') {
    ++p;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; ++p) {
      if (scale >= 1000000000) return false;
      frac = frac * 10 + (*p - '0');
      scale *= 10;
    }
  }
  int64_t mult = 1;
  switch (lower(*p)) {
    case 'k': mult = kKiB; break;
    case 'm': mult = kMiB; break;
    case 'g': mult = kGiB; break;
    case 't': mult = kTiB; break;
    default: break;
  }
  if (mult != 1) {
    ++p;
    if (lower(*p) == 'i') {
      ++p;
      if (lower(*p) != 'b') return false;  // "Ki" alone is a typo
    }
  }
  if (lower(*p) == 'b') ++p;
  if (*p != '\0') return false;
  if (scale > 1 && mult == 1) return false;  // "1.5": half a byte means a typo
  if (whole > INT64_MAX / mult) return false;
  int64_t v = whole * mult;
  // frac/scale of the unit, rounded down. frac * mult could reach 2^70 (T
  // with 9 digits), so split mult by scale: both products stay below 2^60.
  int64_t part = (mult / scale) * frac + (mult % scale) * frac / scale;
  if (v > INT64_MAX - part) return false;
  *out = v + part;
  return true;
}
}  // namespace

bool option_signal_is_crash(int64_t signo) {
  return signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE || signo == SIGABRT ||
         signo == SIGTRAP || signo == SIGSYS;
}

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
  } else if (def.type == OptionType::kBytes) {
    if (!parse_bytes(text, &v)) return false;
  } else {
    const char* p = text;
    bool neg = *p == '-';
    if (neg) ++p;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; ++p) {
      if (v > (INT64_MAX - 9) / 10) return false;
      v = v * 10 + (*p - '0');
    }
    if (*p != '\0') return false;
    if (neg) v = -v;
    if (def.type == OptionType::kSignal && option_signal_is_crash(v)) return false;
  }
  if (v < def.min || v > def.max) return false;
  *out = v;
  return true;
}

namespace {

// The one-line warning for a value options_load refused.
void warn_refused(const OptionDef& def, const char* text) {
  char buf[512];
  TextBuffer t(buf, sizeof buf);
  t.str(def.name).str("='").str(text).str("' ");
  if (def.type == OptionType::kChoice && def.choices != nullptr) {
    t.str("is not one of ");
    for (int i = 0; def.choices[i] != nullptr; ++i) t.str(i ? "|" : "").str(def.choices[i]);
    t.str("; using the default ").str(def.choices[def.def]);
  } else if (def.type == OptionType::kSignal) {
    int64_t v = 0;
    OptionDef plain = def;
    plain.type = OptionType::kInt;
    if (option_parse(plain, text, &v) && option_signal_is_crash(v))
      t.str("is a signal that means a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS): refused");
    else
      t.str("is malformed or out of range [").i64(def.min).str(", ").i64(def.max).ch(']');
    t.str("; using the default ").i64(def.def).str(def.def == 0 ? " (none)" : "");
  } else if (def.type == OptionType::kBool) {
    t.str("is not a boolean (1/0, true/false, yes/no, on/off); using the default ").i64(def.def);
  } else {
    char lo[32], hi[32], d[32];
    auto fmt = [&](int64_t v, char* out) {
      if (def.type == OptionType::kBytes) {
        format_bytes(v, out, 32);
      } else {
        TextBuffer b(out, 32);
        b.i64(v);
      }
    };
    fmt(def.min, lo);
    fmt(def.max, hi);
    fmt(def.def, d);
    t.str("is malformed or out of range [").str(lo).str(", ").str(hi).str("]; using the default ").str(d);
  }
  log_warning(buf);
}

}  // namespace

void options_load() {
  if (g_loaded) return;
  for (int i = 0; i < kNumOptions; ++i) {
    const OptionDef& def = kOptionTable[i];
    g_values[i] = def.def;
    g_sources[i] = static_cast<uint8_t>(OptionSource::kDefault);
    const char* text = os::get_env(def.name);
    if (text == nullptr) continue;
    if (def.type == OptionType::kString) {  // the environment string itself: never copied
      g_values[i] = static_cast<int64_t>(reinterpret_cast<intptr_t>(text));
      g_sources[i] = static_cast<uint8_t>(OptionSource::kEnvironment);
      continue;
    }
    if (option_parse(def, text, &g_values[i]))
      g_sources[i] = static_cast<uint8_t>(OptionSource::kEnvironment);
    else
      warn_refused(def, text);
  }
  // A typo (AMMALLOC_HEAP_PROFLE) would otherwise be ignored in silence.
  for (size_t e = 0;; ++e) {
    const char* entry = os::env_entry(e);
    if (entry == nullptr) break;
    char buf[256];
    if (option_unknown_warning(entry, buf, sizeof buf)) log_warning(buf);
  }
  g_loaded = true;
}

bool options_loaded() { return __atomic_load_n(&g_loaded, __ATOMIC_ACQUIRE); }

void option_store(OptionId id, int64_t value) {
  __atomic_store_n(&g_values[id], value, __ATOMIC_RELAXED);
  __atomic_store_n(&g_sources[id], static_cast<uint8_t>(OptionSource::kApi), __ATOMIC_RELAXED);
}

OptionSource option_source(OptionId id) {
  return static_cast<OptionSource>(__atomic_load_n(&g_sources[id], __ATOMIC_RELAXED));
}

const char* option_source_name(OptionSource s) {
  switch (s) {
    case OptionSource::kEnvironment: return "environment";
    case OptionSource::kApi: return "API";
    default: return "default";
  }
}

int option_name_distance(const char* a, const char* b) {
  // Two rows of the classic dynamic programme, on the stack.
  constexpr int kMax = 64;
  int la = 0, lb = 0, extra = 0;
  while (a[la]) ++la;
  while (b[lb]) ++lb;
  if (la >= kMax) extra += la - (kMax - 1), la = kMax - 1;
  if (lb >= kMax) extra += lb - (kMax - 1), lb = kMax - 1;
  int prev[kMax + 1], cur[kMax + 1];
  for (int j = 0; j <= lb; ++j) prev[j] = j;
  for (int i = 1; i <= la; ++i) {
    cur[0] = i;
    for (int j = 1; j <= lb; ++j) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    for (int j = 0; j <= lb; ++j) prev[j] = cur[j];
  }
  return prev[lb] + extra;
}

int option_closest(const char* name) {
  int best = 0, best_d = 1 << 30;
  for (int i = 0; i < kNumOptions; ++i) {
    int d = option_name_distance(name, kOptionTable[i].name);
    if (d < best_d) best = i, best_d = d;
  }
  return best;
}

bool option_unknown_warning(const char* entry, char* buf, size_t len) {
  static constexpr char kPrefix[] = "AMMALLOC_";
  for (size_t k = 0; k + 1 < sizeof kPrefix; ++k)
    if (entry[k] != kPrefix[k]) return false;
  char name[128];
  size_t n = 0;
  for (; entry[n] && entry[n] != '=' && n + 1 < sizeof name; ++n) name[n] = entry[n];
  name[n] = '\0';
  if (option_find(name) >= 0) return false;
  // Not options of the library: variables of ammalloc's own tools and scripts
  // (ammalloc-run's AMMALLOC_LIB, the tests', fuzz.sh's, stress.sh's, .ci/run's),
  // which reach the programs they start.
  static constexpr const char* kToolNames[] = {"AMMALLOC_LIB", "AMMALLOC_SOURCE_ROOT"};
  static constexpr const char* kToolPrefixes[] = {"AMMALLOC_FUZZ_", "AMMALLOC_STRESS_", "AMMALLOC_CI_"};
  for (const char* t : kToolNames)
    if (equals(name, t)) return false;
  for (const char* pre : kToolPrefixes) {
    size_t k = 0;
    while (pre[k] && name[k] == pre[k]) ++k;
    if (pre[k] == '\0') return false;
  }
  TextBuffer t(buf, len);
  t.str("unknown option ").str(name).str(" ignored; did you mean ");
  t.str(kOptionTable[option_closest(name)].name).str("?");
  return true;
}

void format_bytes(int64_t v, char* buf, size_t len) {
  TextBuffer t(buf, len);
  static constexpr char kUnits[] = "KMGT";
  int unit = -1;
  while (unit < 3 && v != 0 && v % 1024 == 0) v /= 1024, ++unit;
  t.i64(v);
  if (unit >= 0) t.ch(kUnits[unit]);
}

void option_format(OptionId id, char* buf, size_t len) {
  const OptionDef& def = kOptionTable[id];
  int64_t v = option(id);
  TextBuffer t(buf, len);
  switch (def.type) {
    case OptionType::kString: {
      const char* s = option_string(id);
      t.str(s ? s : "unset");
      break;
    }
    case OptionType::kChoice:
      if (def.choices != nullptr && v >= def.min && v <= def.max)
        t.str(def.choices[v]);
      else
        t.i64(v);
      break;
    case OptionType::kBytes:
      format_bytes(v, buf, len);
      break;
    default:
      t.i64(v);
  }
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

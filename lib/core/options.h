// Options: the one table of AMMALLOC_* environment variables.
//
// Owns: each option's name, type, default, allowed range and one-line doc, and
// the values in force. Read once by init (phase 1) without allocating; a
// malformed or out-of-range value prints one "ammalloc: warning:" line and the
// default stays. Nothing is pushed into the tiers: every module reads the
// options it needs where it uses them (option(), one relaxed load), so a value
// changed at run time (am_option_set, am_set_memory_limit) takes effect at the
// next use. The README's options table is checked against this one by
// test/unit/test_options.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

// kChoice: one of the names in `choices` (nullptr-terminated), stored as its
// index; the index itself is accepted too.
// kString: the value is the environment string itself (read only at start-up;
// option_string() returns it, option() its address). option_parse() accepts
// any text for it and yields 0: options_load stores the pointer itself.
// kSignal: a signal number (0 = none), like kInt, except that the signals that
// mean a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) are
// refused: a handler that writes a file and returns would be re-entered by the
// same fault forever (AMMALLOC_HEAP_PROFILE_SIGNAL=11 wrote 23,625 files in 2 s).
//
// kBytes accepts a decimal number with an optional fraction and a K/M/G/T
// suffix (binary: K = 1024), optionally followed by "B" or "iB", any case:
// 4M, 4MiB, 4mb, 1.5M, 64T. A fraction is rounded down to whole bytes.
enum class OptionType : uint8_t { kBool, kBytes, kInt, kChoice, kString, kSignal };

// Where an option's value in force came from (AMMALLOC_VERBOSE lists it).
enum class OptionSource : uint8_t { kDefault, kEnvironment, kApi };

struct OptionDef {
  const char* name;  // environment variable
  OptionType type;
  int64_t def;
  int64_t min;
  int64_t max;
  bool runtime;  // am_option_set may change it while the process runs
  const char* doc;
  const char* const* choices = nullptr;  // kChoice only
};

enum OptionId : int {
  kOptThreadCacheMax = 0,
  kOptThreadCacheTotal,
  kOptStatsOnExit,
  kOptScavenger,
  kOptScavengeIntervalMs,
  kOptReleaseDelayMs,
  kOptGcIntervalMs,
  kOptMemoryLimit,
  kOptTransferCache,
  kOptThp,
  kOptNuma,
  kOptNumaFakeNodes,
  kOptProfileSample,
  kOptHeapProfile,
  kOptHeapProfileInterval,
  kOptHeapProfileSignal,
  kOptStatsSignal,
  kOptHeapCheck,
  kOptHeapCheckExitCode,
  kOptHarden,
  kOptGuardPages,
  kOptVerbose,
  kOptStatsFormat,
  kOptStatsFile,
  kOptProfileStackDepth,
  kOptHeapProfileInuseInterval,
  kOptHeapProfileTimeInterval,
  kOptStartedFile,
  kOptBackgroundThread,
  kOptLargeCache,
  kNumOptions
};

extern const OptionDef kOptionTable[kNumOptions];

// Loaded values (options.cc); read through option().
namespace options_detail {
extern constinit int64_t g_values[kNumOptions];
extern constinit bool g_loaded;
}  // namespace options_detail
// Inline: slow paths read several per operation (a large malloc+free reads
// two), and the call was 12 instructions of the ~500 of that pair.
inline int64_t option(OptionId id) {
  return options_detail::g_loaded ? __atomic_load_n(&options_detail::g_values[id], __ATOMIC_RELAXED)
                                  : kOptionTable[id].def;
}
// A kString option's value, or nullptr when unset.
const char* option_string(OptionId id);
// Reads the environment (init phase 1). Idempotent.
void options_load();
// True once options_load() has run (before, option() gives the defaults).
bool options_loaded();
// Parses one value as the option's type and checks its range. Returns false
// (and leaves *out alone) if malformed or out of range. Exposed for tests.
bool option_parse(const OptionDef& def, const char* text, int64_t* out);
// am_option_set's checks and side effects: 0, EINVAL (unknown name or out of
// range) or EPERM (only read at start-up).
int option_set(const char* name, int64_t value);
// Sets a value from the API (am_option_set above, am_set_memory_limit), with
// no checks: the modules read it where they use it (option()).
void option_store(OptionId id, int64_t value);
// Index of the option called name, or -1.
int option_find(const char* name);
// Where the value in force came from.
OptionSource option_source(OptionId id);
const char* option_source_name(OptionSource s);  // "default", "environment", "API"
// Formats the value in force as the README writes it: choice names, sizes
// with a suffix when exact (2M), strings as they are, "unset".
void option_format(OptionId id, char* buf, size_t len);
// Levenshtein distance between two short strings (at most 63 characters are
// compared; longer tails count as differences). For the unknown-name warning.
int option_name_distance(const char* a, const char* b);
// The known option whose name is closest to `name` (edit distance).
int option_closest(const char* name);
// Checks one "NAME=value" environment entry: when NAME starts with AMMALLOC_
// and is not a known option, writes the warning into buf and returns true.
// options_load warns with it for every entry of the environment.
bool option_unknown_warning(const char* entry, char* buf, size_t len);
// v bytes as the README writes sizes: with the largest exact K/M/G/T suffix.
void format_bytes(int64_t v, char* buf, size_t len);
// Whether signo means a crash (refused by kSignal options).
bool option_signal_is_crash(int64_t signo);

}  // namespace am

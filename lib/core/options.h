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
enum class OptionType : uint8_t { kBool, kBytes, kInt, kChoice, kString };

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
  kOptBackgroundThread,
  kNumOptions
};

extern const OptionDef kOptionTable[kNumOptions];

int64_t option(OptionId id);
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

}  // namespace am

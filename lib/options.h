// Options: the one table of AMMALLOC_* environment variables.
//
// Owns: each option's name, type, default, allowed range and one-line doc, and
// the values in force. Read once by init (phase 1) without allocating; a
// malformed or out-of-range value prints one "ammalloc: warning:" line and the
// default stays. The README's options table is checked against this one by
// test/unit/test_options.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

enum class OptionType : uint8_t { kBool, kBytes, kInt };

struct OptionDef {
  const char* name;  // environment variable
  OptionType type;
  int64_t def;
  int64_t min;
  int64_t max;
  bool runtime;  // am_option_set may change it while the process runs
  const char* doc;
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
  kNumOptions
};

extern const OptionDef kOptionTable[kNumOptions];

int64_t option(OptionId id);
// Reads the environment (init phase 1). Idempotent.
void options_load();
// Parses one value as the option's type and checks its range. Returns false
// (and leaves *out alone) if malformed or out of range. Exposed for tests.
bool option_parse(const OptionDef& def, const char* text, int64_t* out);
// am_option_set's checks and side effects: 0, EINVAL (unknown name or out of
// range) or EPERM (only read at start-up).
int option_set(const char* name, int64_t value);
void apply_option(OptionId id);
// Index of the option called name, or -1.
int option_find(const char* name);

}  // namespace am

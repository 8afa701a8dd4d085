// Options (lib/core/options.h): the parser, the table, loading from the environment,
// and the README's options table against kOptionTable.
//
// The README check reads README.md from the source root that the build passes
// in AMMALLOC_SOURCE_ROOT; without it the check is skipped with a warning.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/options.h"

using namespace am;

namespace {

constexpr int64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;

// Built field by field: fields added to OptionDef later keep their defaults.
OptionDef make_def(const char* name, OptionType type, int64_t def, int64_t min, int64_t max) {
  OptionDef d{};
  d.name = name;
  d.type = type;
  d.def = def;
  d.min = min;
  d.max = max;
  d.doc = "test option";
  return d;
}

const OptionDef kBytes = make_def("TEST_BYTES", OptionType::kBytes, 7, 0, 64 * GiB);
const OptionDef kBytesHuge = make_def("TEST_BYTES_HUGE", OptionType::kBytes, 0, 0, INT64_MAX);
const OptionDef kBool = make_def("TEST_BOOL", OptionType::kBool, 0, 0, 1);
const OptionDef kInt = make_def("TEST_INT", OptionType::kInt, 0, -10, 1000);

// Parses text; returns the value, or the sentinel -999 if rejected (and then
// checks that the output was left alone).
int64_t parse(const OptionDef& def, const char* text) {
  int64_t v = -999;
  bool ok = option_parse(def, text, &v);
  if (!ok) {
    REQUIRE(v == -999);
    return -999;
  }
  return v;
}


}  // namespace

TEST_CASE("option_parse: booleans", "[options]") {
  for (const char* t : {"1", "true", "yes", "on"}) {
    INFO(t);
    CHECK(parse(kBool, t) == 1);
  }
  for (const char* t : {"0", "false", "no", "off"}) {
    INFO(t);
    CHECK(parse(kBool, t) == 0);
  }
  for (const char* t : {"", "2", "-1", "yes ", " yes", "tru", "truee", "y", "onn", "01"}) {
    INFO("'" << t << "'");
    CHECK(parse(kBool, t) == -999);
  }
}

TEST_CASE("option_parse: byte sizes with suffixes", "[options]") {
  CHECK(parse(kBytes, "0") == 0);
  CHECK(parse(kBytes, "123") == 123);
  CHECK(parse(kBytes, "4k") == 4 * KiB);
  CHECK(parse(kBytes, "4K") == 4 * KiB);
  CHECK(parse(kBytes, "2m") == 2 * MiB);
  CHECK(parse(kBytes, "2M") == 2 * MiB);
  CHECK(parse(kBytes, "1g") == GiB);
  CHECK(parse(kBytes, "3G") == 3 * GiB);
  CHECK(parse(kBytes, "0K") == 0);
  CHECK(parse(kBytes, "64G") == 64 * GiB);  // the maximum itself
  CHECK(parse(kBytes, "007") == 7);
}

TEST_CASE("option_parse: malformed and out-of-range values are rejected", "[options]") {
  for (const char* t : {"12x", "", "-1", "-1K", "K", "1Ki", "1KiBB", "1KBB", "1iB", "1k ", " 1", "1 ", "1.5", ".5M",
                        "1.M", "1.5.M", "1.0000000001K", "0x10", "+5", "1P", "1MK",
                        "99999999999999999999", "65G", "68719476737", "18446744073709551616", "--1"}) {
    INFO("'" << t << "'");
    CHECK(parse(kBytes, t) == -999);
  }
  // Overflow by the multiplier: 2^33 G = 2^63 does not fit in int64.
  CHECK(parse(kBytesHuge, "8589934592G") == -999);
  CHECK(parse(kBytesHuge, "8589934591G") == 8589934591 * GiB);
  CHECK(parse(kBytesHuge, "9223372036854775808") == -999);
}

TEST_CASE("option_parse: sizes read like the docs (T, iB/B, fractions)", "[options]") {
  const OptionDef big = make_def("TEST_BIG", OptionType::kBytes, 0, 0, int64_t{1} << 46);
  CHECK(parse(big, "64T") == int64_t{64} << 40);
  CHECK(parse(big, "64t") == int64_t{64} << 40);
  CHECK(parse(big, "65T") == -999);  // above the range
  CHECK(parse(kBytes, "4MiB") == 4 * MiB);
  CHECK(parse(kBytes, "4mib") == 4 * MiB);
  CHECK(parse(kBytes, "4MB") == 4 * MiB);
  CHECK(parse(kBytes, "4Mb") == 4 * MiB);
  CHECK(parse(kBytes, "1KiB") == KiB);
  CHECK(parse(kBytes, "1GiB") == GiB);
  CHECK(parse(kBytes, "100B") == 100);
  CHECK(parse(kBytes, "1.5M") == 3 * MiB / 2);
  CHECK(parse(kBytes, "1.5MiB") == 3 * MiB / 2);
  CHECK(parse(kBytes, "0.5K") == 512);
  CHECK(parse(kBytes, "0.1K") == 102);  // rounded down to whole bytes
  CHECK(parse(kBytes, "2.25G") == 9 * GiB / 4);
  CHECK(parse(kBytes, "0.999999999K") == 1023);
  CHECK(parse(kBytesHuge, "1.5T") == (int64_t{3} << 40) / 2);
  CHECK(parse(kBytesHuge, "8388607.999999999T") == 9223372036854774708);  // no overflow in the fraction
}

TEST_CASE("option_parse: signal options refuse signals that mean a crash", "[options]") {
  const OptionDef sig = make_def("TEST_SIGNAL", OptionType::kSignal, 0, 0, 64);
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) {
    INFO("signal " << s);
    CHECK(option_signal_is_crash(s));
    CHECK(parse(sig, std::to_string(s).c_str()) == -999);
  }
  CHECK(parse(sig, "12") == 12);  // SIGUSR2
  CHECK(parse(sig, "10") == 10);
  CHECK(parse(sig, "0") == 0);
  CHECK(parse(sig, "65") == -999);
  CHECK(kOptionTable[kOptHeapProfileSignal].type == OptionType::kSignal);
  CHECK(kOptionTable[kOptStatsSignal].type == OptionType::kSignal);
}

TEST_CASE("option names: edit distance and the closest known option", "[options]") {
  CHECK(option_name_distance("", "") == 0);
  CHECK(option_name_distance("abc", "abc") == 0);
  CHECK(option_name_distance("kitten", "sitting") == 3);
  CHECK(option_name_distance("", "abcd") == 4);
  CHECK(kOptionTable[option_closest("AMMALLOC_HEAP_PROFLE")].name == std::string("AMMALLOC_HEAP_PROFILE"));
  CHECK(kOptionTable[option_closest("AMMALLOC_STAT_ON_EXIT")].name == std::string("AMMALLOC_STATS_ON_EXIT"));
  CHECK(kOptionTable[option_closest("AMMALLOC_VERBOSe")].name == std::string("AMMALLOC_VERBOSE"));
  char buf[256];
  CHECK(option_unknown_warning("AMMALLOC_HEAP_PROFLE=/tmp/x", buf, sizeof buf));
  CHECK(std::string(buf) == "unknown option AMMALLOC_HEAP_PROFLE ignored; did you mean AMMALLOC_HEAP_PROFILE?");
  CHECK_FALSE(option_unknown_warning("AMMALLOC_HEAP_PROFILE=/tmp/x", buf, sizeof buf));
  CHECK_FALSE(option_unknown_warning("PATH=/bin", buf, sizeof buf));
  CHECK_FALSE(option_unknown_warning("AMMALLO_X=1", buf, sizeof buf));
  // The project's own tool variables are not options and not typos.
  CHECK_FALSE(option_unknown_warning("AMMALLOC_LIB=/x/libammalloc.so", buf, sizeof buf));
  CHECK_FALSE(option_unknown_warning("AMMALLOC_FUZZ_BUILD=/tmp/f", buf, sizeof buf));
  CHECK_FALSE(option_unknown_warning("AMMALLOC_STRESS_BUILD=b", buf, sizeof buf));
  CHECK(option_unknown_warning("AMMALLOC_FUZZ=1", buf, sizeof buf));  // the prefix needs its underscore
  // A 200-character name: bounded work, still a warning.
  std::string longname = "AMMALLOC_" + std::string(200, 'X') + "=1";
  CHECK(option_unknown_warning(longname.c_str(), buf, sizeof buf));
}

TEST_CASE("option_format writes values as the README does", "[options]") {
  char buf[64];
  format_bytes(2 * MiB, buf, sizeof buf);
  CHECK(std::string(buf) == "2M");
  format_bytes(1536 * KiB, buf, sizeof buf);
  CHECK(std::string(buf) == "1536K");
  format_bytes(int64_t{64} << 40, buf, sizeof buf);
  CHECK(std::string(buf) == "64T");
  format_bytes(1000, buf, sizeof buf);
  CHECK(std::string(buf) == "1000");
  format_bytes(0, buf, sizeof buf);
  CHECK(std::string(buf) == "0");
  option_format(kOptNuma, buf, sizeof buf);  // options not loaded here: the defaults
  CHECK(std::string(buf) == "local");
  option_format(kOptStatsFormat, buf, sizeof buf);
  CHECK(std::string(buf) == "text");
  option_format(kOptHeapProfile, buf, sizeof buf);
  CHECK(std::string(buf) == "unset");
  CHECK(std::string(option_source_name(OptionSource::kDefault)) == "default");
  CHECK(std::string(option_source_name(OptionSource::kEnvironment)) == "environment");
  CHECK(std::string(option_source_name(OptionSource::kApi)) == "API");
}

TEST_CASE("options_load: sources, choice names in warnings, unknown names", "[options]") {
  ChildResult r = run_in_child([] {
    setenv("AMMALLOC_THREAD_CACHE_MAX", "4MiB", 1);
    setenv("AMMALLOC_NUMA", "fast", 1);
    setenv("AMMALLOC_STATS_SIGNAL", "7", 1);
    setenv("AMMALLOC_HEAP_PROFLE", "/tmp/x", 1);
    unsetenv("AMMALLOC_STATS_ON_EXIT");
    options_load();
    if (option(kOptThreadCacheMax) != 4 * MiB) return 1;
    if (option_source(kOptThreadCacheMax) != OptionSource::kEnvironment) return 2;
    if (option_source(kOptNuma) != OptionSource::kDefault) return 3;  // refused: the default
    if (option(kOptStatsSignal) != 0) return 4;
    if (option_source(kOptGuardPages) != OptionSource::kDefault) return 5;
    if (option_set("AMMALLOC_GUARD_PAGES", 1) != 0) return 6;
    if (option_source(kOptGuardPages) != OptionSource::kApi) return 7;
    return 0;
  });
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  INFO(r.err);
  CHECK(r.err.find("ammalloc: warning: AMMALLOC_NUMA='fast' is not one of off|local|interleave; using the default local\n") !=
        std::string::npos);
  CHECK(r.err.find("ammalloc: warning: AMMALLOC_STATS_SIGNAL='7' is a signal that means a crash") != std::string::npos);
  CHECK(r.err.find("ammalloc: warning: unknown option AMMALLOC_HEAP_PROFLE ignored; did you mean AMMALLOC_HEAP_PROFILE?\n") !=
        std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 3);
}

TEST_CASE("option_parse: integers", "[options]") {
  CHECK(parse(kInt, "-10") == -10);
  CHECK(parse(kInt, "-5") == -5);
  CHECK(parse(kInt, "1000") == 1000);
  CHECK(parse(kInt, "-11") == -999);
  CHECK(parse(kInt, "1001") == -999);
  CHECK(parse(kInt, "4k") == -999);  // suffixes are for byte sizes only
  CHECK(parse(kInt, "-") == -999);
  CHECK(parse(kInt, "") == -999);
}

TEST_CASE("kOptionTable is well formed", "[options]") {
  std::set<std::string> names;
  for (int i = 0; i < kNumOptions; ++i) {
    const OptionDef& d = kOptionTable[i];
    INFO("option " << i << " " << (d.name ? d.name : "(null)"));
    REQUIRE(d.name != nullptr);
    CHECK(std::string(d.name).rfind("AMMALLOC_", 0) == 0);
    CHECK(names.insert(d.name).second);
    CHECK(d.min <= d.def);
    CHECK(d.def <= d.max);
    REQUIRE(d.doc != nullptr);
    CHECK(strlen(d.doc) > 0);
    if (d.type == OptionType::kBool) {
      CHECK(d.min == 0);
      CHECK(d.max == 1);
    }
    // The default written as text parses back to itself.
    const std::string text = d.type == OptionType::kBool ? std::string(d.def ? "1" : "0") : std::to_string(d.def);
    int64_t v = -1;
    CHECK(option_parse(d, text.c_str(), &v));
    CHECK(v == d.def);
  }
  CHECK(std::string(kOptionTable[kOptThreadCacheMax].name) == "AMMALLOC_THREAD_CACHE_MAX");
  CHECK(kOptionTable[kOptThreadCacheMax].def == 2 * MiB);
}

TEST_CASE("options_load reads the environment once, warns on malformed values", "[options]") {
  // In a fresh child (nothing in this process has loaded the options yet).
  SECTION("valid values are used") {
    ChildResult r = run_in_child([] {
      setenv("AMMALLOC_THREAD_CACHE_MAX", "4M", 1);
      setenv("AMMALLOC_STATS_ON_EXIT", "0", 1);
      options_load();
      if (option(kOptThreadCacheMax) != 4 * MiB) return 1;
      setenv("AMMALLOC_THREAD_CACHE_MAX", "8M", 1);
      options_load();  // idempotent: the environment is read once
      return option(kOptThreadCacheMax) == 4 * MiB ? 0 : 2;
    });
    CHECK(WIFEXITED(r.status));
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(r.err == "");
  }
  SECTION("malformed values warn and keep the default") {
    ChildResult r = run_in_child([] {
      setenv("AMMALLOC_THREAD_CACHE_MAX", "12x", 1);
      unsetenv("AMMALLOC_STATS_ON_EXIT");
      options_load();
      return option(kOptThreadCacheMax) == kOptionTable[kOptThreadCacheMax].def ? 0 : 1;
    });
    CHECK(WIFEXITED(r.status));
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(r.err.rfind("ammalloc: warning: AMMALLOC_THREAD_CACHE_MAX='12x'", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("README's options table lists exactly the options of kOptionTable", "[options][readme]") {
  const char* root = getenv("AMMALLOC_SOURCE_ROOT");
  if (root == nullptr || *root == '\0') {
    WARN("AMMALLOC_SOURCE_ROOT is not set; skipping the README check");
    return;
  }
  std::string path = std::string(root) + "/README.md";
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  // Rows look like: | `AMMALLOC_THREAD_CACHE_MAX` | ... |
  std::map<std::string, int> rows;
  std::string line;
  const std::string prefix = "| `AMMALLOC_";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    size_t end = line.find('`', 3);
    REQUIRE(end != std::string::npos);
    std::string name = line.substr(3, end - 3);
    ++rows[name];
    // The row's third cell is the default; when it parses as the option's
    // type it must be the table's default (catches a stale README).
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, '|');) {
      size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    for (int i = 0; i < kNumOptions; ++i) {
      if (name != kOptionTable[i].name || cells.size() < 4) continue;
      // The type column names the table's type.
      static const char* const kTypeNames[] = {"bool", "bytes", "int", "choice", "string", "signal"};
      INFO("README type of " << name << ": " << cells[2]);
      CHECK(cells[2] == kTypeNames[static_cast<int>(kOptionTable[i].type)]);
      // A choice option's range column lists its names, in order.
      if (kOptionTable[i].type == OptionType::kChoice) {
        std::string names;
        for (int c = 0; kOptionTable[i].choices[c]; ++c) names += (c ? "/" : "") + std::string(kOptionTable[i].choices[c]);
        CHECK(cells[4] == names);
      }
      int64_t v = 0;
      if (option_parse(kOptionTable[i], cells[3].c_str(), &v)) {
        INFO("README default of " << name << ": " << cells[3]);
        CHECK(v == kOptionTable[i].def);
      }
    }
  }
  std::set<std::string> table;
  for (int i = 0; i < kNumOptions; ++i) table.insert(kOptionTable[i].name);
  std::set<std::string> readme;
  for (auto& [name, n] : rows) {
    INFO("README row " << name << " appears " << n << " times");
    CHECK(n == 1);
    readme.insert(name);
  }
  for (const std::string& name : table) {
    INFO("in kOptionTable, missing from README: " << name);
    CHECK(readme.count(name) == 1);
  }
  for (const std::string& name : readme) {
    INFO("in README, not in kOptionTable: " << name);
    CHECK(table.count(name) == 1);
  }
}

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
  for (const char* t : {"12x", "", "-1", "-1K", "K", "1KB", "1k ", " 1", "1 ", "1.5M", "0x10", "+5", "1T",
                        "99999999999999999999", "65G", "68719476737", "18446744073709551616", "--1"}) {
    INFO("'" << t << "'");
    CHECK(parse(kBytes, t) == -999);
  }
  // Overflow by the multiplier: 2^33 G = 2^63 does not fit in int64.
  CHECK(parse(kBytesHuge, "8589934592G") == -999);
  CHECK(parse(kBytesHuge, "8589934591G") == 8589934591 * GiB);
  CHECK(parse(kBytesHuge, "9223372036854775808") == -999);
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

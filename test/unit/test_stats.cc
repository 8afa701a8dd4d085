// Statistics (lib/observe/stats.h, am_stats_text, am_get_numeric_property,
// am_mallinfo2): the report has every MALLOC: line of the design, its figures
// add up exactly and agree with the per-class table and the numeric
// properties, and known allocations move "in use" by exactly their size.
//
// Exact figures need a quiet process: the background thread's GC and
// scavenger are turned off for this program (options are read at the
// allocator's first call, after the static initialiser below).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "core/options.h"
#include "core/size_class.h"

namespace {

const int g_quiet_background = [] {
  setenv("AMMALLOC_GC_INTERVAL_MS", "0", 0);
  setenv("AMMALLOC_SCAVENGER", "0", 0);
  return 0;
}();

constexpr size_t MiB = 1 << 20;

std::string report() {
  std::vector<char> buf(1 << 16);
  size_t n = am_stats_text(buf.data(), buf.size());
  REQUIRE(n < buf.size());
  REQUIRE(strlen(buf.data()) == n);
  return std::string(buf.data(), n);
}

struct MallocLine {
  size_t bytes = 0;
  std::string mib;  // as printed, e.g. "12.5"
  bool found = false;
};

// The figure on the MALLOC: line whose text ends with `label`.
MallocLine find_line(const std::string& text, const std::string& label) {
  std::istringstream in(text);
  std::string line;
  MallocLine out;
  while (std::getline(in, line)) {
    if (line.rfind("MALLOC:", 0) != 0 || line.find(label) == std::string::npos) continue;
    size_t i = 7;
    while (i < line.size() && (line[i] == ' ' || line[i] == '+' || line[i] == '=')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] >= '0' && line[j] <= '9') ++j;
    REQUIRE(j > i);
    out.bytes = std::stoull(line.substr(i, j - i));
    size_t open = line.find('(', j), close = line.find(" MiB)", j);
    if (open != std::string::npos && close != std::string::npos) out.mib = line.substr(open + 1, close - open - 1);
    REQUIRE_FALSE(out.found);  // each label once
    out.found = true;
  }
  INFO("line '" << label << "'");
  REQUIRE(out.found);
  return out;
}

// "12.5": bytes / MiB with one decimal, rounded half up.
std::string mib_text(size_t bytes) {
  unsigned long long tenths = (static_cast<unsigned long long>(bytes) * 10 + MiB / 2) / MiB;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10);
}

struct ClassRow {
  size_t cl, size, spans, in_use_objs, in_use_bytes, central_free, thread_free, transfer_free;
};

std::vector<ClassRow> class_rows(const std::string& text) {
  std::vector<ClassRow> rows;
  size_t at = text.find("class   size");
  REQUIRE(at != std::string::npos);
  std::istringstream in(text.substr(at));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ClassRow r{};
    if (!(ls >> r.cl >> r.size >> r.spans >> r.in_use_objs >> r.in_use_bytes >> r.central_free >> r.thread_free >>
          r.transfer_free))
      break;
    rows.push_back(r);
  }
  return rows;
}

size_t prop(const char* name) {
  size_t v = 0;
  INFO("property " << name);
  REQUIRE(am_get_numeric_property(name, &v) == 1);
  return v;
}

const char* const kMallocLines[] = {
    "Bytes in use by application",     "Bytes in page heap freelist",  "Bytes in central cache freelist",
    "Bytes in transfer cache freelist", "Bytes in thread cache freelists", "Bytes in malloc metadata",
    "Actual memory used",              "Bytes released to OS",          "Virtual address space used"};

// All the exact relations of one report.
void check_report(const std::string& text) {
  INFO(text);
  std::map<std::string, MallocLine> v;
  for (const char* label : kMallocLines) {
    v[label] = find_line(text, label);
    INFO(label);
    CHECK(v[label].mib == mib_text(v[label].bytes));
  }
  const size_t in_use = v["Bytes in use by application"].bytes;
  const size_t page_heap = v["Bytes in page heap freelist"].bytes;
  const size_t central = v["Bytes in central cache freelist"].bytes;
  const size_t transfer = v["Bytes in transfer cache freelist"].bytes;
  const size_t thread = v["Bytes in thread cache freelists"].bytes;
  const size_t metadata = v["Bytes in malloc metadata"].bytes;
  const size_t actual = v["Actual memory used"].bytes;
  const size_t released = v["Bytes released to OS"].bytes;
  const size_t virt = v["Virtual address space used"].bytes;
  CHECK(in_use + page_heap + central + transfer + thread + metadata == actual);
  CHECK(actual + released == virt);
  CHECK(metadata > 0);

  // The per-class table explains the central, thread and transfer figures exactly.
  size_t sum_central = 0, sum_thread = 0, sum_transfer = 0, sum_in_use = 0;
  for (const ClassRow& r : class_rows(text)) {
    INFO("class row " << r.cl);
    REQUIRE(r.cl >= 1);
    REQUIRE(r.cl < am::kNumClasses);
    const am::SizeClassInfo& info = am::class_info(static_cast<uint32_t>(r.cl));
    CHECK(r.size == info.size);
    CHECK(r.in_use_bytes == r.in_use_objs * r.size);
    CHECK(r.central_free % r.size == 0);
    CHECK(r.thread_free % r.size == 0);
    CHECK(r.transfer_free % r.size == 0);
    // Objects: in use + central free + cached (thread and transfer caches) == all objects of the spans.
    CHECK(r.in_use_objs + r.central_free / r.size + r.thread_free / r.size + r.transfer_free / r.size ==
          r.spans * info.objects);
    const size_t tail = info.pages * am::kPageSize - static_cast<size_t>(info.objects) * info.size;
    sum_central += r.central_free + r.spans * tail;
    sum_thread += r.thread_free;
    sum_transfer += r.transfer_free;
    sum_in_use += r.in_use_bytes;
  }
  CHECK(sum_central == central);
  CHECK(sum_thread == thread);
  CHECK(sum_transfer == transfer);
  // In use = large objects + small objects in use (the table's column).
  CHECK(in_use == sum_in_use + prop("ammalloc.large_object_bytes"));
}


}  // namespace

TEST_CASE("stats: the report has every MALLOC: line, in order", "[stats]") {
  void* warm = am_malloc(100);
  std::string text = report();
  size_t pos = 0;
  for (const char* label : kMallocLines) {
    size_t at = text.find(label, pos);
    INFO("missing or out of order: " << label << "\n" << text);
    REQUIRE(at != std::string::npos);
    // On a "MALLOC: " line.
    size_t bol = text.rfind('\n', at);
    bol = bol == std::string::npos ? 0 : bol + 1;
    CHECK(text.compare(bol, 8, "MALLOC: ") == 0);
    pos = at;
  }
  CHECK(text.find("Spans in page heap freelist") != std::string::npos);
  CHECK(text.find("Large objects in use") != std::string::npos);
  CHECK(text.find("Thread heaps in use") != std::string::npos);
  CHECK(text.find("Tcmalloc-compatible page size") != std::string::npos);
  am_free(warm);
}

TEST_CASE("stats: the figures add up exactly", "[stats]") {
  SECTION("quiet start") { check_report(report()); }
  SECTION("with live and cached objects of many classes and large blocks") {
    std::vector<void*> live;
    for (size_t n = 1; n < 300000; n = n * 5 / 4 + 1) live.push_back(am_malloc(n));
    for (int i = 0; i < 5000; ++i) live.push_back(am_malloc(16 + (i * 37) % 3000));
    for (size_t i = 0; i < live.size(); i += 2) am_free(live[i]);
    check_report(report());
    for (size_t i = 1; i < live.size(); i += 2) am_free(live[i]);
    check_report(report());
    am_release_free_memory();
    check_report(report());
  }
}

TEST_CASE("stats: large allocations move bytes in use by exactly their pages", "[stats]") {
  void* warm = am_malloc(10);  // initialised, quiet
  am_free(warm);
  const size_t in_use0 = prop("generic.current_allocated_bytes");
  const size_t large0 = prop("ammalloc.large_objects");
  const size_t large_bytes0 = prop("ammalloc.large_object_bytes");
  const size_t one = MiB + 1;
  const size_t rounded = (one + am::kPageSize - 1) / am::kPageSize * am::kPageSize;  // 1 MiB + 8 KiB
  void* a = am_malloc(one);
  void* b = am_malloc(one);
  void* c = am_malloc(one);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(c != nullptr);
  CHECK(prop("generic.current_allocated_bytes") == in_use0 + 3 * rounded);
  CHECK(prop("ammalloc.large_objects") == large0 + 3);
  CHECK(prop("ammalloc.large_object_bytes") == large_bytes0 + 3 * rounded);
  CHECK(find_line(report(), "Bytes in use by application").bytes == in_use0 + 3 * rounded);
  am_free(b);
  CHECK(prop("generic.current_allocated_bytes") == in_use0 + 2 * rounded);
  am_free(a);
  am_free(c);
  CHECK(prop("generic.current_allocated_bytes") == in_use0);
  CHECK(prop("ammalloc.large_objects") == large0);
  CHECK(prop("ammalloc.large_object_bytes") == large_bytes0);
  CHECK(prop("generic.peak_memory_usage") >= 3 * rounded);
}

TEST_CASE("stats: small allocations move bytes in use by their class size", "[stats]") {
  void* warm = am_malloc(10);
  am_free(warm);
  for (size_t n : {size_t{1}, size_t{100}, size_t{1000}, size_t{5000}, size_t{100000}, size_t{262144}}) {
    const size_t cls = am::class_size(am::size_to_class(n));
    INFO("size " << n << " class size " << cls);
    const size_t before = prop("generic.current_allocated_bytes");
    void* p = am_malloc(n);
    REQUIRE(p != nullptr);
    CHECK(prop("generic.current_allocated_bytes") == before + cls);
    am_free(p);
    CHECK(prop("generic.current_allocated_bytes") == before);
  }
}

TEST_CASE("stats: numeric properties", "[stats]") {
  void* warm = am_malloc(10);
  size_t v = 12345;
  CHECK(am_get_numeric_property("no.such.property", &v) == 0);
  CHECK(v == 12345);
  CHECK(am_get_numeric_property("", &v) == 0);
  CHECK(am_get_numeric_property("generic.current_allocated_bytes.", &v) == 0);
  CHECK(am_get_numeric_property("generic.current_allocated_byte", &v) == 0);
  CHECK(v == 12345);
  CHECK(am_get_numeric_property(nullptr, &v) == 0);
  CHECK(am_get_numeric_property("generic.heap_size", nullptr) == 0);

  // Relations between properties (quiet process: no figure moves in between).
  const size_t heap = prop("generic.heap_size");
  const size_t meta = prop("ammalloc.metadata_bytes");
  const size_t virt = prop("ammalloc.virtual_bytes");
  const size_t released = prop("ammalloc.pageheap_unmapped_bytes");
  const size_t actual = prop("generic.total_physical_bytes");
  CHECK(heap + meta == virt);
  CHECK(virt - released == actual);
  CHECK(prop("generic.current_allocated_bytes") + prop("ammalloc.pageheap_free_bytes") +
            prop("ammalloc.central_cache_free_bytes") + prop("ammalloc.transfer_cache_free_bytes") +
            prop("ammalloc.thread_cache_free_bytes") + meta ==
        actual);
  CHECK(prop("ammalloc.thread_caches") >= 1);
  CHECK(prop("generic.peak_memory_usage") >= prop("ammalloc.large_object_bytes"));
  // And the same figures as the report.
  std::string text = report();
  CHECK(find_line(text, "Bytes in use by application").bytes == prop("generic.current_allocated_bytes"));
  CHECK(find_line(text, "Bytes in page heap freelist").bytes == prop("ammalloc.pageheap_free_bytes"));
  CHECK(find_line(text, "Bytes in central cache freelist").bytes == prop("ammalloc.central_cache_free_bytes"));
  CHECK(find_line(text, "Bytes in thread cache freelists").bytes == prop("ammalloc.thread_cache_free_bytes"));
  CHECK(find_line(text, "Bytes in malloc metadata").bytes == meta);
  CHECK(find_line(text, "Bytes released to OS").bytes == released);
  CHECK(find_line(text, "Virtual address space used").bytes == virt);
  am_free(warm);
}

TEST_CASE("stats: README's property table names only known properties", "[stats][readme]") {
  const char* root = getenv("AMMALLOC_SOURCE_ROOT");
  if (root == nullptr || *root == '\0') {
    WARN("AMMALLOC_SOURCE_ROOT is not set; skipping the README check");
    return;
  }
  std::ifstream in(std::string(root) + "/README.md");
  REQUIRE(in.good());
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    for (const char* prefix : {"| `generic.", "| `ammalloc."}) {
      if (line.rfind(prefix, 0) != 0) continue;
      std::string name = line.substr(3, line.find('`', 3) - 3);
      size_t v;
      INFO("README property " << name);
      CHECK(am_get_numeric_property(name.c_str(), &v) == 1);
      ++rows;
    }
  }
  CHECK(rows > 0);
}

TEST_CASE("stats: a short buffer truncates and returns the length needed", "[stats]") {
  void* warm = am_malloc(10);
  const std::string full = report();
  const size_t n = full.size();
  CHECK(am_stats_text(nullptr, 0) == n);
  char small[10];
  memset(small, 'X', sizeof small);
  CHECK(am_stats_text(small, sizeof small) == n);
  CHECK(small[9] == '\0');
  CHECK(std::string(small) == full.substr(0, 9));
  char one[1] = {'X'};
  CHECK(am_stats_text(one, 1) == n);
  CHECK(one[0] == '\0');
  std::vector<char> exact(n + 1, 'X');
  CHECK(am_stats_text(exact.data(), exact.size()) == n);
  CHECK(std::string(exact.data()) == full);
  std::vector<char> short_by_one(n, 'X');
  CHECK(am_stats_text(short_by_one.data(), short_by_one.size()) == n);
  CHECK(std::string(short_by_one.data()) == full.substr(0, n - 1));
  am_free(warm);
}

TEST_CASE("stats: mallinfo2 agrees with the properties", "[stats]") {
  void* big = am_malloc(3 * MiB);
  void* small = am_malloc(100);
  struct am_mallinfo2 mi = am_mallinfo2();
  CHECK(mi.uordblks == prop("generic.current_allocated_bytes"));
  CHECK(mi.hblks == prop("ammalloc.large_objects"));
  CHECK(mi.hblkhd == prop("ammalloc.large_object_bytes"));
  CHECK(mi.arena == prop("generic.heap_size") - prop("ammalloc.pageheap_unmapped_bytes"));
  CHECK(mi.keepcost == prop("ammalloc.pageheap_free_bytes"));
  CHECK(mi.fsmblks == prop("ammalloc.central_cache_free_bytes") + prop("ammalloc.transfer_cache_free_bytes") +
                          prop("ammalloc.thread_cache_free_bytes"));
  CHECK(mi.fordblks == mi.keepcost + mi.fsmblks);
  CHECK(mi.smblks == 0);
  CHECK(mi.hblks >= 1);
  CHECK(mi.hblkhd >= 3 * MiB);
  CHECK(mi.usmblks >= mi.hblkhd);
  am_free(big);
  am_free(small);
}

TEST_CASE("stats: am_malloc_stats writes the report to stderr", "[stats]") {
  void* warm = am_malloc(10);
  ChildResult r = run_in_child([] { am_malloc_stats(); });
  CHECK(WIFEXITED(r.status));
  // First line: the library and its version.
  CHECK(r.err.rfind(std::string("ammalloc ") + AMMALLOC_VERSION + " statistics, pid ", 0) == 0);
  CHECK(r.err.find("\n------------------------------------------------\nMALLOC: ") != std::string::npos);
  for (const char* label : kMallocLines) {
    INFO(label);
    CHECK(r.err.find(label) != std::string::npos);
  }
  check_report(r.err);
  am_free(warm);
}

// A thread with a cancellation request pending (deferred, enabled) that calls
// am_malloc_stats must print the whole report and return: if the allocator's
// writes were cancellation points, the thread would be cancelled at its first
// write(2), maybe with an allocator lock held and the report lost (issue 14).
TEST_CASE("stats: am_malloc_stats is not a cancellation point", "[stats]") {
  ChildResult r = run_in_child([] {
    pthread_t t;
    void* ret = nullptr;
    pthread_create(
        &t, nullptr,
        [](void*) -> void* {
          int old;
          pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
          pthread_cancel(pthread_self());  // pending until enabled again
          pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
          am_malloc_stats();
          return reinterpret_cast<void*>(1);
        },
        nullptr);
    pthread_join(t, &ret);
    if (ret != reinterpret_cast<void*>(1)) _exit(3);  // PTHREAD_CANCELED
  });
  INFO(r.describe());
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  for (const char* label : kMallocLines) {
    INFO(label);
    CHECK(r.err.find(label) != std::string::npos);
  }
}

TEST_CASE("stats: the version is the project's and leads the report", "[stats]") {
  CHECK(std::string(am_version()) == AMMALLOC_VERSION);
  // The one source of the version: meson.build's project(version: '...').
  if (const char* root = getenv("AMMALLOC_SOURCE_ROOT")) {
    std::ifstream in(std::string(root) + "/meson.build");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t at = all.find("version: '");
    REQUIRE(at != std::string::npos);
    at += 10;
    CHECK(all.substr(at, all.find('\'', at) - at) == AMMALLOC_VERSION);
  }
  CHECK(AMMALLOC_VERSION_NUMBER == AMMALLOC_VERSION_MAJOR * 10000 + AMMALLOC_VERSION_MINOR * 100 + AMMALLOC_VERSION_PATCH);
  std::string text = report();
  CHECK(text.rfind(std::string("ammalloc ") + am_version() + " statistics, pid ", 0) == 0);
}

TEST_CASE("stats: the report has peak lines, and the peak is at least what was in use", "[stats]") {
  am_reset_peak_memory();
  void* big = am_malloc(8 * MiB);
  memset(big, 1, 8 * MiB);
  am_free(big);
  std::string text = report();
  MallocLine peak = find_line(text, "Peak bytes in spans and large objects");
  MallocLine rpeak = find_line(text, "Peak resident heap bytes");
  REQUIRE(peak.found);
  REQUIRE(rpeak.found);
  CHECK(peak.bytes >= 8 * MiB);
  CHECK(rpeak.bytes >= 8 * MiB);
  size_t prop = 0;
  REQUIRE(am_get_numeric_property("generic.peak_memory_usage", &prop));
  CHECK(prop >= 8 * MiB);
}

namespace {
// Runs /usr/bin/python3 on `json`: 0 if it parses and `code` (asserts on d)
// holds. quiet: python's traceback is expected, not shown.
int python_check_json(const std::string& json, const std::string& code, bool quiet = false) {
  char path[] = "/tmp/ammalloc-test-json.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size()));
  close(fd);
  std::string cmd = "/usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); " + code + "' " + path +
                    (quiet ? " 2>/dev/null" : "");
  int rc = system(cmd.c_str());
  unlink(path);
  return rc;
}
}  // namespace

TEST_CASE("stats: am_stats_json is valid JSON with every property", "[stats]") {
  if (access("/usr/bin/python3", X_OK) != 0) {
    WARN("/usr/bin/python3 missing: JSON not parsed");
    return;
  }
  void* keep = am_malloc(3 * MiB);
  std::vector<char> buf(1 << 16);
  size_t n = am_stats_json(buf.data(), buf.size());
  REQUIRE(n < buf.size());
  std::string json(buf.data(), n);
  CHECK(json.find('\n') == std::string::npos);  // one line (JSON Lines in a file)
  size_t in_use = 0;
  REQUIRE(am_get_numeric_property("generic.current_allocated_bytes", &in_use));
  CHECK(python_check_json(json,
                          "assert d[\"version\"] == \"" + std::string(am_version()) +
                              "\"; assert d[\"generic.current_allocated_bytes\"] >= 3 << 20; "
                              "assert isinstance(d[\"ammalloc.resident_peak_bytes\"], int); "
                              "assert isinstance(d[\"ammalloc.thp\"], bool); assert len(d) >= 30") == 0);
  // Truncation: like am_stats_text, the length needed and a NUL.
  char small[10];
  CHECK(am_stats_json(small, sizeof small) == n);
  CHECK(strlen(small) == 9);
  // A mangled document must fail the check (the check can fail).
  CHECK(python_check_json(json.substr(0, json.size() - 1), "pass", true) != 0);
  am_free(keep);
}

TEST_CASE("stats: AMMALLOC_STATS_FILE and AMMALLOC_STATS_FORMAT=json", "[stats]") {
  char path[] = "/tmp/ammalloc-test-stats.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::string p = path;
  // This process has loaded its options already: a child sets them as
  // options_load would (a kString option holds the string's address).
  ChildResult r = run_in_child([p] {
    am::option_store(am::kOptStatsFile, reinterpret_cast<intptr_t>(p.c_str()));
    am::option_store(am::kOptStatsFormat, 1);
    am_malloc_stats();
    am_malloc_stats();
  });
  CHECK(WIFEXITED(r.status));
  CHECK(r.err == "");
  std::ifstream in(p);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    CHECK(line.rfind("{\"version\":", 0) == 0);
    if (access("/usr/bin/python3", X_OK) == 0) CHECK(python_check_json(line, "assert d[\"pid\"] > 0") == 0);
  }
  CHECK(lines == 2);  // appended
  // An unwritable file: a warning, and the report on stderr.
  ChildResult r2 = run_in_child([] {
    am::option_store(am::kOptStatsFile, reinterpret_cast<intptr_t>("/nonexistent-dir/stats"));
    am_malloc_stats();
  });
  CHECK(r2.err.rfind("ammalloc: warning: AMMALLOC_STATS_FILE: cannot open /nonexistent-dir/stats; the report goes to stderr\n", 0) == 0);
  CHECK(r2.err.find("Bytes in use by application") != std::string::npos);
  unlink(path);
}

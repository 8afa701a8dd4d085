// The /proc reader (lib/os/proc.h): maps lines parsed into their fields, smaps
// records with Rss, status fields, and the attribution of smaps to the heap
// (lib/observe/heap_usage.h).
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>

#include "ammalloc/ammalloc.h"
#include "observe/heap_usage.h"
#include "os/proc.h"

namespace {

struct Find {
  uintptr_t addr;
  int found = 0;
  am::os::MapsLine hit;
  std::string path, line;
};

bool find_mapping(const am::os::MapsLine& m, void* arg) {
  auto* f = static_cast<Find*>(arg);
  if (f->addr < m.start || f->addr >= m.end) return true;
  ++f->found;
  f->hit = m;
  f->path = m.path;
  f->line.assign(m.line, m.line_len);
  return false;
}

}  // namespace

TEST_CASE("proc: a maps line is parsed into its fields", "[proc]") {
  am::os::MapsLine m;
  const char* line = "7f12a000-7f12c000 r-xp 0001b000 08:01 1234                       /usr/lib/libc.so.6";
  REQUIRE(am::os::parse_maps_line(line, &m));
  CHECK(m.start == 0x7f12a000u);
  CHECK(m.end == 0x7f12c000u);
  CHECK(std::string(m.perms) == "r-xp");
  CHECK(m.offset == 0x1b000u);
  CHECK(std::string(m.path) == "/usr/lib/libc.so.6");
  CHECK_FALSE(m.anonymous());
  CHECK(m.line_len == strlen(line));
  REQUIRE(am::os::parse_maps_line("55d0c000-55d0e000 rw-p 00000000 00:00 0 ", &m));
  CHECK(m.anonymous());
  CHECK(std::string(m.perms) == "rw-p");
  CHECK_FALSE(am::os::parse_maps_line("Rss:                 4 kB", &m));
  CHECK_FALSE(am::os::parse_maps_line("", &m));
}

TEST_CASE("proc: the mappings of this process, streamed through a small buffer", "[proc]") {
  // The executable's code: a file mapping with x permission.
  Find code{reinterpret_cast<uintptr_t>(&find_mapping)};
  char buf[256];  // smaller than many lines: long paths are cut, addresses stay
  REQUIRE(am::os::for_each_mapping(buf, sizeof buf, find_mapping, &code));
  REQUIRE(code.found == 1);
  CHECK(code.hit.perms[2] == 'x');
  CHECK(code.line.find('-') != std::string::npos);
  // A fresh anonymous mapping: exact bounds, rw-p.
  size_t len = 4 * 4096;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  Find anon{reinterpret_cast<uintptr_t>(p) + 4096};
  char big[8192];
  REQUIRE(am::os::for_each_mapping(big, sizeof big, find_mapping, &anon));
  REQUIRE(anon.found == 1);
  CHECK(anon.hit.start <= reinterpret_cast<uintptr_t>(p));
  CHECK(anon.hit.end >= reinterpret_cast<uintptr_t>(p) + len);
  CHECK(std::string(anon.hit.perms, 3) == "rw-");
  munmap(p, len);
}

namespace {
struct SmapsFind {
  uintptr_t addr;
  int records = 0, found = 0;
  am::os::SmapsRecord hit;
};
bool find_record(const am::os::SmapsRecord& r, void* arg) {
  auto* f = static_cast<SmapsFind*>(arg);
  ++f->records;
  if (f->addr >= r.start && f->addr < r.end) {
    ++f->found;
    f->hit = r;
  }
  return true;
}
}  // namespace

TEST_CASE("proc: smaps records carry Rss and AnonHugePages", "[proc]") {
  size_t len = 64 * 4096;
  // PROT_EXEC keeps the kernel from merging it with a neighbour.
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  memset(p, 1, 16 * 4096);  // 16 pages resident
  SmapsFind f{reinterpret_cast<uintptr_t>(p)};
  char buf[4096];
  REQUIRE(am::os::for_each_smaps_record(buf, sizeof buf, find_record, &f));
  CHECK(f.records > 5);
  REQUIRE(f.found == 1);
  CHECK(f.hit.rss >= 16 * 4096);
  CHECK(f.hit.rss <= f.hit.end - f.hit.start);
  CHECK(f.hit.anon_huge <= f.hit.rss);
  munmap(p, len);
}

TEST_CASE("proc: status fields, resident bytes, the heap's usage", "[proc]") {
  CHECK(am::os::status_field("Threads") >= 1);
  CHECK(am::os::status_field("VmRSS") > 0);
  CHECK(am::os::status_field("NoSuchField") == -1);
  CHECK(am::os::resident_bytes() > 0);
  void* p = am_malloc(1 << 20);
  memset(p, 1, 1 << 20);
  am::HugePageUsage u = am::hugepage_heap_usage();
  CHECK(u.ok);
  CHECK(u.rss >= (1 << 20));
  CHECK(u.anon_huge <= u.rss);
  am_free(p);
}

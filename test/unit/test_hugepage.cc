// Transparent huge pages (lib/heap/hugepage_map.h, the THP policy of lib/heap/page_heap.h).
// RSS-SENSITIVE (suite 'rss'): reads the kernel's view of the heap
// (/proc/self/smaps); sanitizer runs skip it.
//
//  - a 256 MiB working set of mixed small objects has more than half of the
//    heap's resident memory in huge pages with AMMALLOC_THP on, and about none
//    with it off (each in a fresh process: the mode is fixed at the first
//    region; this binary runs itself with the environment set);
//  - a heap smaller than kThpMinHeapBytes is not advised; once it grows past
//    that, every region is (a child process: the heap must start fresh);
//  - the 2 MiB bookkeeping counts live pages, and placement reuses holes in
//    partly used ranges before it breaks into a wholly free one;
//  - the scavenger releases wholly free and sparse ranges but keeps the free
//    pages of a dense range until they have been idle longer; asked for
//    everything, it releases them too.
// Skipped, saying why, when the kernel has THP disabled ([never]).
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "heap/hugepage_map.h"
#include "observe/heap_usage.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "policy/scavenger.h"
#include "core/options.h"
#include "core/pagemap.h"

using namespace am;

namespace {

// The large-span cache (heap/page_heap_cache.cc) keeps freed large spans, and
// their pages' live counts, out of the free sets whose huge-page placement
// these tests examine: off for the program (options_load: some cases call
// the page heap before any am_* call would load the options).
const bool kCacheOff = [] {
  setenv("AMMALLOC_LARGE_CACHE", "0", 1);
  options_load();
  return true;
}();

constexpr size_t kMiB = size_t{1} << 20;

struct ChildRun {
  int status = -1;
  std::string out;
  std::map<std::string, double> figures;  // "FIGURE <name> <value>" lines
};

// Runs the hidden test case `name` of this binary in a fresh process with the
// extra environment, and collects its output.
ChildRun run_thp_child(const char* name, const std::vector<std::pair<const char*, const char*>>& env) {
  SelfRun run = run_self(name, {}, env);
  ChildRun r;
  r.status = run.status;
  r.out = run.out;
  std::istringstream in(r.out);
  std::string word, key;
  double v;
  while (in >> word)
    if (word == "FIGURE" && in >> key >> v) r.figures[key] = v;
  return r;
}

size_t prop(const char* name) {
  size_t v = 0;
  REQUIRE(am_get_numeric_property(name, &v) == 1);
  return v;
}

bool kernel_has_thp(std::string* why) {
  ThpKernelMode m = thp_kernel_mode();
  if (m == ThpKernelMode::kAlways || m == ThpKernelMode::kMadvise) return true;
  *why = std::string("the kernel has transparent huge pages disabled (/sys/kernel/mm/transparent_hugepage/enabled: ") +
         thp_kernel_mode_name(m) + ")";
  return false;
}

Span* large(size_t pages, size_t align_pages = 1) {
  bool zeroed;
  Span* s = page_heap_alloc_large(pages, align_pages, &zeroed);
  REQUIRE(s != nullptr);
  return s;
}

void touch(uintptr_t start, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 4096) reinterpret_cast<volatile char*>(start)[i] = 1;
}

// The VmFlags of the mapping holding addr ("hg": MADV_HUGEPAGE, "nh":
// MADV_NOHUGEPAGE), from /proc/self/smaps.
std::string vm_flags(uintptr_t addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    unsigned long a, b;
    if (sscanf(line.c_str(), "%lx-%lx ", &a, &b) == 2 && line.find('-') < 17) {
      inside = a <= addr && addr < b;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

bool has_flag(const std::string& flags, const char* f) {
  return flags.find(std::string(" ") + f + " ") != std::string::npos ||
         (flags.size() >= 3 && flags.compare(flags.size() - 3, 3, std::string(" ") + f) == 0);
}

const Span* span_at(uintptr_t addr) {
  Span* s = pagemap_span(addr);
  REQUIRE(s != nullptr);
  return s;
}

}  // namespace

// --- child: the working set ----------------------------------------------------

TEST_CASE("thp child: 256 MiB of mixed small objects", "[.][thp_child]") {
  constexpr size_t kTotal = 256 * kMiB;
  std::vector<std::pair<void*, size_t>> objs;
  objs.reserve(kTotal / 64);
  uint64_t x = 88172645463325252ull;
  size_t total = 0;
  while (total < kTotal) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    // Mostly 16..512 bytes, some up to 8 KiB and 32 KiB: many size classes.
    size_t r = x % 100, n = r < 80 ? 16 + (x >> 8) % 497 : r < 97 ? 513 + (x >> 8) % 7680 : 8193 + (x >> 8) % 24576;
    void* p = am_malloc(n);
    REQUIRE(p != nullptr);
    memset(p, static_cast<int>(n), n);
    objs.push_back({p, n});
    total += n;
  }
  size_t huge = prop("ammalloc.hugepage_bytes"), rss = prop("ammalloc.heap_rss_bytes");
  printf("FIGURE thp_enabled %d\nFIGURE objects %zu\nFIGURE huge %zu\nFIGURE rss %zu\nFIGURE resident %zu\n",
         thp_enabled() ? 1 : 0, objs.size(), huge, rss, prop("ammalloc.resident_bytes"));
  for (auto& [p, n] : objs) am_free(p);
}

TEST_CASE("thp child: a small heap is advised once it grows", "[.][thp_child]") {
  void* small = am_malloc(100);
  REQUIRE(small != nullptr);
  const uintptr_t first = reinterpret_cast<uintptr_t>(small);
  printf("FIGURE enabled %d\nFIGURE active_small %d\nFIGURE hg_small %d\n", thp_enabled() ? 1 : 0,
         thp_active() ? 1 : 0, has_flag(vm_flags(first), "hg") ? 1 : 0);
  void* big = am_malloc(kThpMinHeapBytes);
  REQUIRE(big != nullptr);
  printf("FIGURE active_big %d\nFIGURE hg_first %d\nFIGURE hg_big %d\n", thp_active() ? 1 : 0,
         has_flag(vm_flags(first), "hg") ? 1 : 0, has_flag(vm_flags(reinterpret_cast<uintptr_t>(big)), "hg") ? 1 : 0);
  am_free(big);
  am_free(small);
}

// --- the acceptance tests -------------------------------------------------------

TEST_CASE("THP: a heap smaller than kThpMinHeapBytes is not advised; once it grows past, all of it is",
          "[hugepage]") {
  std::string why;
  if (!kernel_has_thp(&why)) {
    WARN("skipped: " << why);
    return;
  }
  ChildRun r = run_thp_child("thp child: a small heap is advised once it grows", {{"AMMALLOC_THP", "1"}});
  INFO(r.out);
  REQUIRE(WIFEXITED(r.status));
  REQUIRE(WEXITSTATUS(r.status) == 0);
  CHECK(r.figures["enabled"] == 1);
  CHECK(r.figures["active_small"] == 0);
  CHECK(r.figures["hg_small"] == 0);  // the first touch faults 4 KiB pages, not 2 MiB
  CHECK(r.figures["active_big"] == 1);
  CHECK(r.figures["hg_first"] == 1);  // the early region is advised retroactively
  CHECK(r.figures["hg_big"] == 1);
}

TEST_CASE("THP: a 256 MiB working set of small objects lives mostly in huge pages; with AMMALLOC_THP=0 about none",
          "[hugepage][rss]") {
  std::string why;
  if (!kernel_has_thp(&why)) {
    WARN("skipped: " << why);
    return;
  }
  ChildRun on = run_thp_child("thp child: 256 MiB of mixed small objects", {{"AMMALLOC_THP", "1"}});
  INFO(on.out);
  REQUIRE(WIFEXITED(on.status));
  REQUIRE(WEXITSTATUS(on.status) == 0);
  ChildRun off = run_thp_child("thp child: 256 MiB of mixed small objects", {{"AMMALLOC_THP", "0"}});
  INFO(off.out);
  REQUIRE(WIFEXITED(off.status));
  REQUIRE(WEXITSTATUS(off.status) == 0);

  double on_huge = on.figures["huge"], on_rss = on.figures["rss"];
  double off_huge = off.figures["huge"], off_rss = off.figures["rss"];
  printf("THP on:  %.1f of %.1f MiB of heap RSS in huge pages (%.1f%%)\n", on_huge / kMiB, on_rss / kMiB,
         on_rss ? 100 * on_huge / on_rss : 0);
  printf("THP off: %.1f of %.1f MiB of heap RSS in huge pages (%.1f%%)\n", off_huge / kMiB, off_rss / kMiB,
         off_rss ? 100 * off_huge / off_rss : 0);
  CHECK(on.figures["thp_enabled"] == 1);
  CHECK(off.figures["thp_enabled"] == 0);
  CHECK(on_rss >= 256.0 * kMiB);
  CHECK(on_huge > on_rss / 2);
  CHECK(off_rss >= 256.0 * kMiB);
  CHECK(off_huge < off_rss / 50);  // about none: under 2%
}

// --- in-process: bookkeeping and placement ---------------------------------------

TEST_CASE("hugepage: live pages are counted per 2 MiB range", "[hugepage]") {
  page_heap_release_all();
  Span* a = large(3 * kPagesPerHugePage, kPagesPerHugePage);
  uintptr_t hp0 = hugepage_of_page(a->first_page);
  CHECK(hugepage_is_heap(a->start()));
  CHECK_FALSE(hugepage_is_heap(reinterpret_cast<uintptr_t>(&hp0)));  // a stack address
  for (int i = 0; i < 3; ++i) CHECK(hugepage_live_pages(hp0 + i) == kPagesPerHugePage);
  page_heap_free_large(a);
  for (int i = 0; i < 3; ++i) CHECK(hugepage_live_pages(hp0 + i) == 0);
  // Spans across a boundary count in both ranges.
  Span* b = large(kPagesPerHugePage + 10, kPagesPerHugePage);
  Span* c = large(20);  // right after b (backed best fit: the rest of a)
  REQUIRE(c->first_page == b->first_page + kPagesPerHugePage + 10);
  CHECK(hugepage_live_pages(hp0) == kPagesPerHugePage);
  CHECK(hugepage_live_pages(hp0 + 1) == 30);
  CHECK_FALSE(hugepage_any_live(first_page_of_hugepage(hp0 + 2), kPagesPerHugePage));
  page_heap_free_large(b);
  CHECK(hugepage_live_pages(hp0 + 1) == 20);
  page_heap_free_large(c);
  CHECK(hugepage_live_pages(hp0 + 1) == 0);
}

TEST_CASE("hugepage: holes in partly used ranges are filled before a wholly free range is broken into",
          "[hugepage]") {
  page_heap_release_all();
  // Six ranges, backed and free, then carved into 8-page spans in order.
  constexpr size_t kRanges = 6, kPer = kPagesPerHugePage / 8;
  Span* a = large(kRanges * kPagesPerHugePage, kPagesPerHugePage);
  const uintptr_t hp0 = hugepage_of_page(a->first_page);
  page_heap_free_large(a);
  std::vector<Span*> spans;
  for (size_t i = 0; i < kRanges * kPer; ++i) {
    spans.push_back(large(8));
    REQUIRE(spans.back()->first_page == first_page_of_hugepage(hp0) + 8 * i);
  }
  // Holes in ranges 0..3 (every other span); ranges 4 and 5 wholly free.
  size_t holes = 0;
  for (size_t i = 0; i < kRanges * kPer; ++i) {
    if (i < 4 * kPer && i % 2 == 0) continue;
    page_heap_free_large(spans[i]);
    spans[i] = nullptr;
    holes += i < 4 * kPer;
  }
  CHECK(hugepage_live_pages(hp0 + 4) == 0);
  CHECK(hugepage_live_pages(hp0 + 5) == 0);
  for (size_t k = 0; k < holes; ++k) {
    Span* s = large(8);
    INFO("allocation " << k << " landed in range " << hugepage_of_page(s->first_page) - hp0);
    CHECK(hugepage_of_page(s->first_page) < hp0 + 4);
    spans.push_back(s);
  }
  CHECK(hugepage_live_pages(hp0 + 4) == 0);
  for (int i = 0; i < 4; ++i) CHECK(hugepage_live_pages(hp0 + i) == kPagesPerHugePage);
  for (Span* s : spans)
    if (s) page_heap_free_large(s);
}

TEST_CASE("hugepage: the scavenger releases wholly free and sparse ranges, keeps dense ones until idle longer",
          "[hugepage]") {
  if (!thp_enabled()) {
    std::string why;
    WARN("skipped: " << (kernel_has_thp(&why) ? std::string("AMMALLOC_THP is off") : why));
    return;
  }
  // Regions are advised only once the heap has mapped kThpMinHeapBytes
  // (hugepage_map.h); this process's heap may be smaller so far: grow it.
  page_heap_free_large(large(pages_for(kThpMinHeapBytes)));
  REQUIRE(thp_active());
  page_heap_release_all();
  const size_t P = kPagesPerHugePage;
  // Three ranges, touched, freed: backed.
  Span* a = large(3 * P, P);
  const uintptr_t base = a->start();
  const uintptr_t first = a->first_page;
  touch(base, a->bytes());
  page_heap_free_large(a);
  // Range 0 dense (138 live pages), range 1 wholly free, range 2 sparse (10 live).
  Span* dense = large(138);
  REQUIRE(dense->first_page == first);
  Span* gap = large(P - 138 + P + 10);
  Span* sparse = large(10);
  REQUIRE(sparse->first_page == first + 2 * P + 10);
  page_heap_free_large(gap);
  const uint64_t t_free = os::now_ns();
  CHECK(hugepage_live_pages(hugepage_of_page(first)) == 138);
  CHECK(hugepage_live_pages(hugepage_of_page(first) + 1) == 0);
  CHECK(hugepage_live_pages(hugepage_of_page(first) + 2) == 10);

  // The cutoff is "freed before t_free"; 200 ms later, so dense ranges need
  // idleness since t_free - 100 ms, which our spans do not have.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  size_t released = scavenger_release(t_free + 1);
  const size_t want = (P + 10 + (P - 20)) * kPageSize;  // range 1, range 2 but the 10 live pages
  INFO("released " << released / kPageSize << " pages; want " << want / kPageSize);
  CHECK(released == want);
  const Span* kept = span_at(base + 138 * kPageSize);
  CHECK(kept->state == Span::kFree);
  CHECK_FALSE(kept->released);
  CHECK(kept->num_pages == P - 138);
  const Span* r1 = span_at(base + P * kPageSize);
  CHECK(r1->state == Span::kFree);
  CHECK(r1->released);
  const Span* r2 = span_at(base + (2 * P + 20) * kPageSize);
  CHECK(r2->state == Span::kFree);
  CHECK(r2->released);

  // The sparse range lost its huge page: advised MADV_NOHUGEPAGE so that
  // khugepaged does not fill it again; the wholly released one keeps "hg".
  const uintptr_t r2_addr = base + 2 * P * kPageSize;
  INFO("range 1: " << vm_flags(base + P * kPageSize) << "; range 2: " << vm_flags(r2_addr));
  CHECK(has_flag(vm_flags(r2_addr), "nh"));
  CHECK(has_flag(vm_flags(base + P * kPageSize), "hg"));
  CHECK(has_flag(vm_flags(base), "hg"));  // the dense range kept its huge page

  // Asked for everything, it releases the dense range's free pages too.
  CHECK(page_heap_release_all() == (P - 138) * kPageSize);
  CHECK(span_at(base + 138 * kPageSize)->released);
  CHECK(has_flag(vm_flags(base), "nh"));
  // Wholly free and released again, the ranges get their advice back.
  page_heap_free_large(dense);
  page_heap_free_large(sparse);
  page_heap_release_all();
  INFO("range 0: " << vm_flags(base) << "; range 2: " << vm_flags(r2_addr));
  CHECK(has_flag(vm_flags(base), "hg"));
  CHECK(has_flag(vm_flags(r2_addr), "hg"));
}

TEST_CASE("hugepage: stats report the heap's huge-page share", "[hugepage][rss]") {
  void* p = am_malloc(100);
  std::vector<char> buf(64 * 1024);
  size_t n = am_stats_text(buf.data(), buf.size());
  REQUIRE(n < buf.size());
  std::string text(buf.data(), n);
  INFO(text);
  CHECK(text.find("Bytes of heap RSS in transparent huge pages") != std::string::npos);
  CHECK(text.find("NUMA partitions") != std::string::npos);
  HugePageUsage u = hugepage_heap_usage();
  CHECK(u.ok);
  CHECK(u.rss > 0);
  CHECK(u.anon_huge <= u.rss);
  CHECK(prop("ammalloc.heap_rss_bytes") > 0);
  am_free(p);
}

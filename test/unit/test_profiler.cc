// Heap profiler (lib/observe/profiler.h, lib/observe/profile_writer.h, lib/observe/stacktrace.h): the
// text format google-pprof parses, stacks that start at the program's frame,
// buckets per stack (bounded metadata, exact in-use figures with mixed sizes),
// dump files and their names, interval dumps, dumps that write without the
// profiler's lock, and google-pprof reading a profile of this very test binary.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "observe/profile_writer.h"
#include "core/meta_arena.h"
#include "core/options.h"
#include "observe/profiler.h"
#include "observe/stacktrace.h"

namespace {

std::string profile_text(bool maps) {
  std::string s(8 << 20, '\0');
  size_t n = am_heap_profile_text(&s[0], s.size(), maps);
  REQUIRE(n < s.size());
  s.resize(n);
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Profiling {
  explicit Profiling(int64_t period, const char* prefix = nullptr) {
    REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", period) == 0);
    REQUIRE(am_heap_profile_start(prefix) == 0);
    am_free(am_malloc(1));  // re-arm this thread's countdown
  }
  ~Profiling() {
    am_heap_profile_stop();
    am_option_set("AMMALLOC_PROFILE_SAMPLE", 512 * 1024);
  }
};

// Known allocation sites: every allocation is sampled with a 1-byte mean.
// noclone: no constprop copies; aligned: each site owns [address, address + 256).
extern "C" __attribute__((noinline, noclone, aligned(256))) void* profiler_test_site(size_t n) {
  void* p = am_malloc(n);
  __asm__ __volatile__("" ::"r"(p) : "memory");  // no tail call
  return p;
}
extern "C" __attribute__((noinline, noclone, aligned(256))) void* profiler_test_site_new(size_t n) {
  void* p = am_new(n, 0);
  __asm__ __volatile__("" ::"r"(p) : "memory");
  return p;
}

// Every profile line whose first frame is in (lo, hi].
std::vector<std::string> lines_with_top(const std::string& text, uintptr_t lo, uintptr_t hi) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t at = line.find(" @ ");
    if (at == std::string::npos || line.rfind("heap profile:", 0) == 0) continue;
    uintptr_t top = std::strtoull(line.c_str() + at + 3, nullptr, 16);
    if (top > lo && top <= hi) out.push_back(line);
  }
  return out;
}

// The first such line, or "".
std::string line_with_top(const std::string& text, uintptr_t lo, uintptr_t hi) {
  std::vector<std::string> lines = lines_with_top(text, lo, hi);
  return lines.empty() ? "" : lines[0];
}

}  // namespace

TEST_CASE("captured stacks start at the program's frame", "[profiler][stack]") {
  void* pcs[am::kMaxStackDepth];
  int n = am::stacktrace_capture(pcs, am::kMaxStackDepth);
  REQUIRE(n >= 2);
  // This test function called stacktrace_capture directly: no internal frame
  // to drop, the first is ours (the return address into this function).
  for (int i = 0; i < n; ++i) CHECK_FALSE(am::stacktrace_is_internal(pcs[i]));
  void* raw[am::kMaxStackDepth];
  int m = am::stacktrace_capture_raw(raw, am::kMaxStackDepth);
  CHECK(m >= n);
  CHECK(am::stacktrace_capture(pcs, 3) == 3);
}

TEST_CASE("profile text: header, one line per stack, maps", "[profiler][format]") {
  Profiling on(1);
  std::string before = profile_text(false);
  std::vector<void*> keep;
  for (int i = 0; i < 10; ++i) keep.push_back(profiler_test_site(1000));
  for (int i = 0; i < 5; ++i) keep.push_back(profiler_test_site(3000));
  for (int i = 0; i < 3; ++i) keep.push_back(profiler_test_site_new(200000));
  void* gone = profiler_test_site(1000);
  am_free(gone);
  std::string text = profile_text(true);

  std::regex header(R"(^heap profile: +(\d+): +(\d+) \[ *(\d+): +(\d+)\] @ heap_v2/1\n)");
  std::smatch m;
  REQUIRE(std::regex_search(text, m, header));
  std::regex line(R"(^ *(\d+): +(\d+) \[ *(\d+): +(\d+)\] @( 0x[0-9a-f]+)+$)");
  std::istringstream in(text);
  std::string l;
  std::getline(in, l);
  int lines = 0;
  while (std::getline(in, l) && !l.empty()) {
    INFO(l);
    CHECK(std::regex_match(l, line));
    ++lines;
  }
  CHECK(lines >= 3);
  CHECK(std::getline(in, l));
  CHECK(l == "MAPPED_LIBRARIES:");
  CHECK(text.find("r-xp") != std::string::npos);

  // The site's lines: its return address is the first frame.
  auto site = reinterpret_cast<uintptr_t>(&profiler_test_site);
  auto site_new = reinterpret_cast<uintptr_t>(&profiler_test_site_new);
  std::string l1000, l3000;
  {
    std::istringstream in2(text);
    while (std::getline(in2, l)) {
      if (l.rfind("    10:    10000 [    10:    10000] @", 0) == 0) l1000 = l;
      if (l.rfind("     5:    15000 [     5:    15000] @", 0) == 0) l3000 = l;
    }
  }
  INFO(text.substr(0, 2000));
  REQUIRE(!l1000.empty());  // the loop's site: 10 live (the freed one has its own stack)
  REQUIRE(!l3000.empty());
  uintptr_t top = std::strtoull(l1000.c_str() + l1000.find(" @ ") + 3, nullptr, 16);
  CHECK(top > site);
  CHECK(top < site + 64);
  std::string big = line_with_top(text, site_new, site_new + 64);
  CHECK(big.rfind("     3:   600000 [     3:   600000] @", 0) == 0);
  for (void* p : keep) am_free(p);
  std::string after = profile_text(false);
  CHECK(after.find("     0:        0 [    10:    10000] @") != std::string::npos);
  CHECK(after.find("     0:        0 [     1:     1000] @") != std::string::npos);
}

TEST_CASE("profile files: names, sequence, interval dumps", "[profiler][files]") {
  char dir[] = "/tmp/ammalloc-test-profiler.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string prefix = std::string(dir) + "/prof";
  {
    Profiling on(4096, prefix.c_str());
    void* p = profiler_test_site(100000);
    int seq = am_heap_profile_dump();
    REQUIRE(seq >= 1);
    char name[512];
    snprintf(name, sizeof name, "%s.%d.%04d.heap", prefix.c_str(), (int)getpid(), seq);
    std::string text = read_file(name);
    INFO(name);
    REQUIRE(text.rfind("heap profile: ", 0) == 0);
    CHECK(text.find("@ heap_v2/4096\n") != std::string::npos);
    CHECK(text.find("\nMAPPED_LIBRARIES:\n") != std::string::npos);
    CHECK(am_heap_profile_dump() == seq + 1);

    // Every 1 MiB allocated: 8 MiB gives about 8 more files.
    REQUIRE(am_option_set("AMMALLOC_HEAP_PROFILE_INTERVAL", 1 << 20) == 0);
    int first = am_heap_profile_dump();
    for (int i = 0; i < 2048; ++i) am_free(am_malloc(4096));
    int last = am_heap_profile_dump();
    REQUIRE(am_option_set("AMMALLOC_HEAP_PROFILE_INTERVAL", 0) == 0);
    INFO("dumps between: " << last - first - 1);
    CHECK(last - first - 1 >= 6);
    CHECK(last - first - 1 <= 12);
    am_free(p);
  }
  CHECK(am_heap_profile_dump() == -1);  // stopped
  std::string cmd = std::string("rm -rf ") + dir;
  CHECK(system(cmd.c_str()) == 0);
}

TEST_CASE("the memory limit writes a profile before the callback, at most one a second", "[profiler][files]") {
  char dir[] = "/tmp/ammalloc-test-limit-profile.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string prefix = std::string(dir) + "/prof";
  {
    Profiling on(4096, prefix.c_str());
    am_release_free_memory();
    size_t used = 0, peak = 0;
    am_memory_usage(&used, &peak);
    static int calls;
    calls = 0;
    am_set_memory_limit(used + (4 << 20), [](void*, size_t) { ++calls; }, nullptr);
    int before = am_heap_profile_dump();
    errno = 0;
    CHECK(am_malloc(64 << 20) == nullptr);  // 64 MiB past a limit 4 MiB above today's use
    CHECK(errno == ENOMEM);
    CHECK(am_malloc(64 << 20) == nullptr);  // again at once: no second profile
    am_set_memory_limit(0, nullptr, nullptr);
    CHECK(calls == 2);
    int after = am_heap_profile_dump();
    INFO("profiles between: " << after - before - 1);
    CHECK(after - before - 1 == 1);
    char name[512];
    snprintf(name, sizeof name, "%s.%d.%04d.heap", prefix.c_str(), (int)getpid(), before + 1);
    std::string text = read_file(name);
    INFO(name);
    CHECK(text.find("trigger: memory-limit") != std::string::npos);
  }
  std::string cmd = std::string("rm -rf ") + dir;
  CHECK(system(cmd.c_str()) == 0);
}

TEST_CASE("profile_file_name", "[profiler][files]") {
  char buf[64];
  CHECK(am::profile_file_name(buf, sizeof buf, "/tmp/x", 42, 7, nullptr));
  CHECK(std::string(buf) == "/tmp/x.42.0007.heap");
  CHECK(am::profile_file_name(buf, sizeof buf, "p", 1, 12345, nullptr));
  CHECK(std::string(buf) == "p.1.12345.heap");
  CHECK(am::profile_file_name(buf, sizeof buf, "p", 9, 0, "leaks"));
  CHECK(std::string(buf) == "p.9.leaks.heap");
  CHECK_FALSE(am::profile_file_name(buf, 8, "/tmp/x", 42, 7, nullptr));
}

TEST_CASE("google-pprof reads a profile of this binary with symbols", "[profiler][pprof]") {
  if (system("command -v google-pprof >/dev/null 2>&1") != 0) {
    WARN("google-pprof not installed (Debian: google-perftools); skipped");
    return;
  }
  char dir[] = "/tmp/ammalloc-test-pprof.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string prefix = std::string(dir) + "/p";
  std::vector<void*> keep;
  int seq;
  {
    Profiling on(1, prefix.c_str());
    for (int i = 0; i < 50; ++i) keep.push_back(profiler_test_site(20000));
    seq = am_heap_profile_dump();
  }
  REQUIRE(seq >= 1);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "google-pprof --text %s %s.%d.%04d.heap 2>/dev/null", exe, prefix.c_str(),
           (int)getpid(), seq);
  FILE* f = popen(cmd, "r");
  REQUIRE(f != nullptr);
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, f)) out += buf;
  pclose(f);
  INFO(out);
  // The site is the top entry (most "flat" bytes: the 1 MB it keeps alive).
  size_t total = out.find("Total:");
  REQUIRE(total != std::string::npos);
  size_t eol = out.find('\n', total);
  std::string first = out.substr(eol + 1, out.find('\n', eol + 1) - eol - 1);
  CHECK(first.find("profiler_test_site") != std::string::npos);
  for (void* p : keep) am_free(p);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

namespace {
// A chain of `depth` frames, then one sampled allocation of `size` bytes.
__attribute__((noinline)) void* deep_alloc(int depth, size_t size) {
  if (depth == 0) return am_malloc(size);
  void* p = deep_alloc(depth - 1, size);
  __asm__ volatile("" ::: "memory");  // no tail call: every level keeps its frame
  return p;
}

// Frames on the profile line of the bucket of `size` bytes (0 if none).
int frames_of(const std::string& text, size_t size) {
  std::istringstream in(text);
  std::string line;
  const std::string needle = " " + std::to_string(size) + " [";  // counts are right-aligned
  while (std::getline(in, line)) {
    if (line.rfind("heap profile:", 0) == 0 || line.find(needle) == std::string::npos) continue;
    size_t at = line.find(" @ ");
    if (at == std::string::npos) continue;
    int n = 0;
    for (size_t i = at; (i = line.find(" 0x", i)) != std::string::npos; ++i) ++n;
    return n;
  }
  return 0;
}
}  // namespace

TEST_CASE("AMMALLOC_PROFILE_STACK_DEPTH: 128 frames by default, up to 256", "[profiler][stack]") {
  REQUIRE(am::kOptionTable[am::kOptProfileStackDepth].def == 128);
  REQUIRE(am::kOptionTable[am::kOptProfileStackDepth].max == 256);
  REQUIRE(am::kMaxStackDepth >= 256);
  Profiling on(1);
  void* a = deep_alloc(300, 777001);  // deeper than either limit
  CHECK(frames_of(profile_text(false), 777001) == 128);
  am::option_store(am::kOptProfileStackDepth, 256);
  void* b = deep_alloc(300, 777002);
  CHECK(frames_of(profile_text(false), 777002) == 256);
  void* c = deep_alloc(10, 777003);  // a short stack is whole: it reaches main
  int short_frames = frames_of(profile_text(false), 777003);
  CHECK(short_frames > 10);
  CHECK(short_frames < 128);
  am::option_store(am::kOptProfileStackDepth, 128);
  am_free(a);
  am_free(b);
  am_free(c);
}

namespace {
// Sites of their own (no other test's stacks start here).
extern "C" __attribute__((noinline, noclone, aligned(256))) void* profiler_sizes_site(size_t n) {
  void* p = am_malloc(n);
  __asm__ __volatile__("" ::"r"(p) : "memory");
  return p;
}
extern "C" __attribute__((noinline, noclone, aligned(256))) void* profiler_mixed_site(size_t n) {
  void* p = am_malloc(n);
  __asm__ __volatile__("" ::"r"(p) : "memory");
  return p;
}


struct Counts {
  uint64_t live, live_bytes, allocs, alloc_bytes;
};
Counts parse_counts(const std::string& line) {
  Counts c{};
  REQUIRE(sscanf(line.c_str(), " %lu: %lu [ %lu: %lu]", &c.live, &c.live_bytes, &c.allocs, &c.alloc_bytes) == 4);
  return c;
}
}  // namespace

// Buckets are per stack: metadata grows with the distinct stacks, not with the
// distinct request sizes one stack asks for (issue 13, item 6). With buckets
// per stack and size, the ~190,000 sampled sizes below cost ~12 MiB of buckets.
TEST_CASE("200,000 distinct sizes from one stack: metadata stays bounded", "[profiler][buckets]") {
  Profiling on(1024);
  const size_t before = am::meta_bytes();
  for (size_t i = 0; i < 200000; ++i) am_free(profiler_sizes_site(1024 + i));  // each sampled with p >= 63%
  const size_t grown = am::meta_bytes() - before;
  INFO("metadata grown by " << grown << " bytes");
  CHECK(grown <= (size_t{4} << 20));
  std::vector<std::string> lines = lines_with_top(profile_text(false), reinterpret_cast<uintptr_t>(&profiler_sizes_site), reinterpret_cast<uintptr_t>(&profiler_sizes_site) + 63);
  REQUIRE(lines.size() == 1);  // one stack, one line
  Counts c = parse_counts(lines[0]);
  CHECK(c.live == 0);
  CHECK(c.live_bytes == 0);
  CHECK(c.allocs > 150000);
  CHECK(c.alloc_bytes > c.allocs * 1024);
  CHECK(c.alloc_bytes < c.allocs * (1024 + 200000));
}

// One stack, mixed sizes, some freed: its line holds the live samples' count
// and requested bytes, and every allocation's; the in-use estimate returns to
// where it was when all are freed, although the period changed in between (a
// free takes off exactly the weight its allocation added).
TEST_CASE("one stack with mixed sizes: in-use figures match the live samples", "[profiler][buckets]") {
  Profiling on(1);  // every allocation of >= 100 bytes is sampled (p > 1 - e^-100)
  const uint64_t estimate0 = am::profiler_inuse_estimate();
  const size_t sizes[] = {100, 1000, 3000, 8192, 8193, 70000, 123457, 300000, 1 << 20};
  std::vector<void*> keep;
  std::vector<size_t> size_of;
  for (int round = 0; round < 5; ++round) {
    for (size_t n : sizes) {
      keep.push_back(profiler_mixed_site(n));
      size_of.push_back(n);
    }
  }
  const uint64_t allocs = keep.size();
  uint64_t alloc_bytes = 0;
  for (size_t n : size_of) alloc_bytes += n;
  CHECK(am::profiler_inuse_estimate() >= estimate0 + alloc_bytes);

  // Free every third object (every size is hit in some round), at another period.
  REQUIRE(am_option_set("AMMALLOC_PROFILE_SAMPLE", 4096) == 0);
  uint64_t live = 0, live_bytes = 0;
  for (size_t i = 0; i < keep.size(); ++i) {
    if (i % 3 == 0) {
      am_free(keep[i]);
      keep[i] = nullptr;
    } else {
      ++live;
      live_bytes += size_of[i];
    }
  }
  const uintptr_t site = reinterpret_cast<uintptr_t>(&profiler_mixed_site);
  std::string text = profile_text(false);
  std::vector<std::string> lines = lines_with_top(text, site, site + 63);
  INFO(text.substr(0, 2000));
  REQUIRE(lines.size() == 1);
  Counts c = parse_counts(lines[0]);
  CHECK(c.live == live);
  CHECK(c.live_bytes == live_bytes);
  CHECK(c.allocs == allocs);
  CHECK(c.alloc_bytes == alloc_bytes);

  for (void* p : keep) am_free(p);
  c = parse_counts(lines_with_top(profile_text(false), site, site + 63).at(0));
  CHECK(c.live == 0);
  CHECK(c.live_bytes == 0);
  CHECK(c.allocs == allocs);
  CHECK(c.alloc_bytes == alloc_bytes);
  CHECK(am::profiler_inuse_estimate() == estimate0);
}

namespace {
// The system call thread `tid` is blocked in now (/proc/<pid>/task/<tid>/syscall), or -1.
long blocked_syscall(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  std::string s = read_file(path);
  if (s.empty() || s[0] < '0' || s[0] > '9') return -1;
  return std::strtol(s.c_str(), nullptr, 10);
}
}  // namespace

// A dump writes its file without the profiler's lock: while one thread's dump
// is stuck opening a FIFO nobody reads yet, another thread's sampled
// allocation completes. (Before the snapshot, the dump held the lock for its
// whole file I/O and the allocation waited for the reader.)
TEST_CASE("a dump blocked in its file I/O does not hold up sampled allocations", "[profiler][files]") {
  char dir[] = "/tmp/ammalloc-test-profile-fifo.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string prefix = std::string(dir) + "/p";
  {
    Profiling on(1, prefix.c_str());
    int seq = am_heap_profile_dump();
    REQUIRE(seq >= 1);
    char name[512];
    snprintf(name, sizeof name, "%s.%d.%04d.heap", prefix.c_str(), (int)getpid(), seq + 1);
    REQUIRE(mkfifo(name, 0600) == 0);

    // The allocating thread arms its sampling countdown (a thread's first
    // allocation does), then waits for the dumper to be stuck.
    std::atomic<bool> armed{false}, go{false}, allocated{false};
    void* p = nullptr;
    std::thread allocator([&] {
      am_free(am_malloc(1));
      armed = true;
      while (!go.load()) std::this_thread::yield();
      p = profiler_mixed_site(5000);  // sampled (period 1): takes the profiler's lock
      allocated = true;
    });
    while (!armed.load()) std::this_thread::yield();

    std::atomic<pid_t> dumper_tid{0};
    std::atomic<int> dumped{0};
    std::thread dumper([&] {
      dumper_tid = static_cast<pid_t>(syscall(SYS_gettid));
      dumped = am_heap_profile_dump();  // opens the FIFO: blocks until we read
    });
    // Wait until the dumper is blocked in open(2) (or, without /proc's view, a while).
    while (dumper_tid.load() == 0) std::this_thread::yield();
    bool seen = false;
    for (int i = 0; i < 500 && !seen; ++i) {
      long nr = blocked_syscall(dumper_tid.load());
      seen = nr == SYS_openat || nr == SYS_open;
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    INFO("dumper seen blocked in open: " << seen);

    go = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!allocated.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(allocated.load());  // done while the dump still waits for its reader

    // Read the profile from the FIFO: the dump finishes, whole.
    int fd = open(name, O_RDONLY);
    REQUIRE(fd >= 0);
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(fd);
    dumper.join();
    allocator.join();
    CHECK(dumped.load() == seq + 1);
    CHECK(text.rfind("heap profile: ", 0) == 0);
    CHECK(text.find("\nMAPPED_LIBRARIES:\n") != std::string::npos);
    am_free(p);
  }
  std::string cmd = std::string("rm -rf ") + dir;
  CHECK(system(cmd.c_str()) == 0);
}

// Large buffers (>= 1 MiB: KV-cache blocks, activations): page-aligned spans,
// every alignment up to 1 GiB, reuse of pages already faulted in when a step
// frees and allocates the same sizes again (counted in minor page faults with
// getrusage), and the scavenger giving idle ones back. RSS-SENSITIVE (suite
// 'rss'): counts page faults and reads the heap's RSS.
#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "core/config.h"
#include "heap/hugepage_map.h"
#include "os/os.h"
#include "heap/page_heap.h"

namespace {

constexpr size_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// One write per 4 KiB page, the way a kernel fills a buffer.
void touch(void* p, size_t n, char v) {
  volatile char* c = static_cast<char*>(p);
  for (size_t i = 0; i < n; i += 4096) c[i] = v;
  c[n - 1] = v;
}

size_t prop(const char* name) {
  size_t v = 0;
  REQUIRE(am_get_numeric_property(name, &v) == 1);
  return v;
}

long long opt(const char* name) {
  long long v = 0;
  REQUIRE(am_option_get(name, &v) == 1);
  return v;
}

struct OptionGuard {
  const char* name;
  long long saved;
  OptionGuard(const char* n, long long v) : name(n), saved(opt(n)) { REQUIRE(am_option_set(n, v) == 0); }
  ~OptionGuard() { am_option_set(name, saved); }
};

}  // namespace

TEST_CASE("large buffers: page-aligned, and every alignment up to 1 GiB", "[large_buffers]") {
  for (size_t size : {kMiB, 3 * kMiB + 5, 17 * kMiB}) {
    void* p = am_malloc(size);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % am::kPageSize == 0);
    CHECK(am_malloc_usable_size(p) >= size);
    touch(p, size, 1);
    am_free(p);
  }
  for (size_t align = 4 * kKiB; align <= kGiB; align *= 2) {
    for (size_t size : {kMiB, 3 * kMiB + 5}) {
      INFO("alignment " << align << ", size " << size);
      void* p = nullptr;
      REQUIRE(am_posix_memalign(&p, align, size) == 0);
      REQUIRE(p != nullptr);
      CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
      static_cast<char*>(p)[0] = 1;
      static_cast<char*>(p)[size - 1] = 1;
      void* q = am_aligned_alloc(align, size);
      REQUIRE(q != nullptr);
      CHECK(reinterpret_cast<uintptr_t>(q) % align == 0);
      CHECK((static_cast<char*>(q) + size <= p || static_cast<char*>(p) + size <= q));
      am_free(q);
      am_free(p);
    }
  }
}

TEST_CASE("large buffers: freed and allocated again at the same size, no new page faults", "[large_buffers][rss]") {
  OptionGuard scavenger("AMMALLOC_SCAVENGER", 0);  // nothing may be released in between
  constexpr size_t kSize = 64 * kMiB;
  void* p = am_malloc(kSize);
  REQUIRE(p != nullptr);
  long f0 = minor_faults();
  touch(p, kSize, 1);
  long first = minor_faults() - f0;
  am_free(p);
  void* q = am_malloc(kSize);
  REQUIRE(q != nullptr);
  long f1 = minor_faults();
  touch(q, kSize, 2);
  long second = minor_faults() - f1;
  printf("64 MiB buffer: %ld minor faults on first touch, %ld after free + malloc of the same size (%s)\n", first,
         second, q == p ? "same address" : "another address");
  // The freed span may have merged with resident free neighbours; whatever
  // part of them the new buffer got was resident already.
  CHECK(second <= 4);
  am_free(q);
}

TEST_CASE("large buffers: an inference step's buffers reuse the previous step's pages", "[large_buffers][rss]") {
  OptionGuard scavenger("AMMALLOC_SCAVENGER", 0);
  // Per step: activations of 1..64 MiB (64-byte aligned), KV-cache blocks of
  // 2 MiB, and small metadata objects; all freed at the end of the step.
  const size_t acts[] = {kMiB, 3 * kMiB, 8 * kMiB, 12 * kMiB + 4096, 16 * kMiB, 64 * kMiB};
  std::vector<void*> live;
  live.reserve(4096);
  long faults[4] = {};
  for (int step = 0; step < 4; ++step) {
    long f0 = minor_faults();
    for (size_t n : acts) {
      void* p = am_aligned_alloc(64, n);
      REQUIRE(p != nullptr);
      touch(p, n, static_cast<char>(step));
      live.push_back(p);
    }
    for (int k = 0; k < 8; ++k) {
      void* p = am_malloc(2 * kMiB);
      REQUIRE(p != nullptr);
      touch(p, 2 * kMiB, 3);
      live.push_back(p);
    }
    for (int k = 0; k < 2000; ++k) {
      size_t n = 16 + (static_cast<size_t>(k) * 37) % 500;
      void* p = am_malloc(n);
      REQUIRE(p != nullptr);
      memset(p, k, n);
      live.push_back(p);
    }
    faults[step] = minor_faults() - f0;
    for (void* p : live) am_free(p);
    live.clear();
  }
  printf("inference steps: minor faults per step %ld, %ld, %ld, %ld\n", faults[0], faults[1], faults[2], faults[3]);
  // Reuse means later steps fault in almost nothing of what step 0 did (6,400
  // faults with 4 KiB pages; about 60 when huge pages back the buffers, one
  // fault per 2 MiB). Since regions are carved from reservations, step 1
  // sometimes faults ~85 small pages (2 of ~20 runs with 4 KiB pages; with
  // the large cache on by default, 2 of 3 runs of the unit suite in parallel,
  // when step 0 had ~950 faults, part of them huge) and never steps 2 and 3.
  // So step 1 may fault 2% of step 0 or 128 pages, whichever is more, and the
  // last two steps, the proof of reuse, must be clean: a step that did not
  // reuse would fault ~60 huge pages or thousands of small ones.
  const long step1_allowed = faults[0] / 50 > 128 ? faults[0] / 50 : 128;
  INFO("step 1");
  CHECK(faults[1] <= step1_allowed);
  CHECK(faults[2] + faults[3] <= 16);
}

TEST_CASE("large buffers: a size no resident span fits gives back as much of the old sizes' pages",
          "[large_buffers]") {
  OptionGuard scavenger("AMMALLOC_SCAVENGER", 0);
  am_release_free_memory();  // no resident free spans but ours
  // Two 16 MiB buffers kept apart by live ones, freed: 32 MiB resident, free.
  void* a = am_malloc(16 * kMiB);
  void* fence1 = am_malloc(2 * kMiB);
  void* b = am_malloc(16 * kMiB);
  void* fence2 = am_malloc(2 * kMiB);
  touch(a, 16 * kMiB, 1);
  touch(b, 16 * kMiB, 1);
  am_free(a);
  am_free(b);
  am::PageHeapStats st0 = am::page_heap_stats();
  REQUIRE(st0.free_bytes >= 32 * kMiB);
  // The same size again: a resident span fits, nothing is released.
  void* again = am_malloc(16 * kMiB);
  CHECK(am::page_heap_stats().offset_released_bytes == st0.offset_released_bytes);
  am_free(again);
  // 40 MiB fits neither: the heap grows by 40 MiB and gives back the 32.
  st0 = am::page_heap_stats();
  void* big = am_malloc(40 * kMiB);
  REQUIRE(big != nullptr);
  am::PageHeapStats st1 = am::page_heap_stats();
  INFO("free " << st0.free_bytes / kMiB << " -> " << st1.free_bytes / kMiB << " MiB");
  CHECK(st1.offset_released_bytes - st0.offset_released_bytes >= 32 * kMiB);
  CHECK(st1.free_bytes + 32 * kMiB <= st0.free_bytes);
  CHECK(st1.resident_bytes <= st0.resident_bytes + 40 * kMiB - 32 * kMiB + 2 * kMiB);
  am_free(big);
  am_free(fence1);
  am_free(fence2);
}

TEST_CASE("large buffers: idle ones go back to the OS through the scavenger", "[large_buffers][rss]") {
  OptionGuard delay("AMMALLOC_RELEASE_DELAY_MS", 100);
  OptionGuard interval("AMMALLOC_SCAVENGE_INTERVAL_MS", 20);
  OptionGuard scavenger("AMMALLOC_SCAVENGER", 1);
  constexpr size_t kSize = 64 * kMiB;
  void* p = am_malloc(kSize);
  REQUIRE(p != nullptr);
  touch(p, kSize, 1);
  const size_t rss_peak = prop("ammalloc.heap_rss_bytes");
  const size_t released0 = prop("ammalloc.scavenger_bytes_released");
  am_free(p);
  // Background work starts from an allocation's slow path.
  void* poke = am_malloc(300 * kKiB);
  am_free(poke);
  size_t rss = rss_peak;
  void* keep = am_malloc(64);
  auto t0 = std::chrono::steady_clock::now();
  // A background thread that is already sleeping finishes its current sleep
  // (up to the GC interval, 5 s by default, if an earlier case had switched
  // the scavenger off) before it reads the new options.
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(15)) {
    // Allocating: a single-threaded process has no background thread, its
    // allocation slow paths scavenge (policy/background.h). A small object
    // through the slow path (the cache flushed; `keep` holds its span in the
    // central cache): a large one would be carved from the idle buffer's
    // span and make it young again.
    am_thread_cache_flush();
    am_free(am_malloc(64));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    rss = prop("ammalloc.heap_rss_bytes");
    // The counter moves when the pass returns, after the madvise calls.
    if (rss + 60 * kMiB <= rss_peak && prop("ammalloc.scavenger_bytes_released") - released0 >= 60 * kMiB)
      break;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  printf("idle 64 MiB buffer: heap RSS %.1f -> %.1f MiB in %.0f ms (release delay 100 ms)\n",
         static_cast<double>(rss_peak) / kMiB, static_cast<double>(rss) / kMiB, ms);
  am_free(keep);
  CHECK(rss + 60 * kMiB <= rss_peak);
  CHECK(prop("ammalloc.scavenger_bytes_released") - released0 >= 60 * kMiB);
}

// ---- impossible sizes and huge regions (issue 13) ---------------------------

namespace {

size_t vm_size() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  fclose(f);
  return kb * kKiB;
}

}  // namespace

TEST_CASE("large buffers: a size no machine could back is NULL + ENOMEM at once, as in glibc", "[large_buffers]") {
  constexpr size_t kTiB = kGiB * 1024;
  size_t vm0 = vm_size();
  for (int i = 0; i < 4; ++i) {
    errno = 0;
    void* p = am_malloc(32 * kTiB);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(am_aligned_alloc(16 * kTiB, 64) == nullptr);
    CHECK(errno == ENOMEM);
    CHECK(am_calloc(1, 32 * kTiB) == nullptr);
    // glibc, in the same process (the unit tests do not interpose).
    errno = 0;
    void* g = malloc(32 * kTiB);
    CHECK(g == nullptr);
    CHECK(errno == ENOMEM);
    free(g);
    g = aligned_alloc(16 * kTiB, 64);
    CHECK(g == nullptr);
    free(g);
  }
  size_t vm1 = vm_size();
  INFO("VmSize " << (vm0 >> 20) << " MiB -> " << (vm1 >> 20) << " MiB");
  CHECK(vm1 <= vm0 + 64 * kMiB);  // nothing reserved (it was 114 TiB after a few)
}

TEST_CASE("large buffers: under RLIMIT_AS a reservation that fails leaves nothing behind", "[large_buffers]") {
  // In a child: the limit stays there.
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    size_t vm0 = vm_size();
    rlimit rl{vm0 + 2 * kGiB, vm0 + 2 * kGiB};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(10);
    for (int i = 0; i < 8; ++i) {
      errno = 0;
      if (am_malloc(3 * kGiB) != nullptr) _exit(11);  // fits the limit's number, not what is left
      if (errno != ENOMEM) _exit(12);
      if (am_malloc(vm0 + 4 * kGiB) != nullptr) _exit(13);  // more than RLIMIT_AS: refused up front
    }
    if (vm_size() > vm0 + 64 * kMiB) _exit(14);
    void* p = am_malloc(64 * kMiB);  // and the heap still works
    if (p == nullptr) _exit(15);
    am_free(p);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO("child status " << status);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("large buffers: wholly free regions of 1 GiB or more are unmapped once idle", "[large_buffers]") {
  am_release_free_memory();
  size_t vm0 = vm_size();
  std::vector<char*> v;
  for (int i = 0; i < 3; ++i) {
    char* p = static_cast<char*>(am_malloc(2 * kGiB + i * 64 * kMiB));
    REQUIRE(p != nullptr);
    p[0] = 1;
    p[kGiB] = 1;
    v.push_back(p);
  }
  size_t vm1 = vm_size();
  CHECK(vm1 >= vm0 + 6 * kGiB);
  for (char* p : v) am_free(p);
  uint64_t freed_at = am::os::now_ns();
  // Not idle long enough for a pass whose cutoff is before the frees.
  am::ReleaseRule early;
  early.freed_before_ns = freed_at - 1000000000ull;
  early.unmap_before_ns = early.freed_before_ns;
  am::page_heap_release(early);
  CHECK(vm_size() >= vm0 + 6 * kGiB);
  // Idle since before the cutoff: unmapped, not only madvised.
  am::ReleaseRule late;
  late.freed_before_ns = am::os::now_ns() + 1;
  late.unmap_before_ns = late.freed_before_ns;
  am::page_heap_release(late);
  size_t vm2 = vm_size();
  INFO("VmSize " << (vm0 >> 20) << " MiB -> " << (vm1 >> 20) << " MiB -> " << (vm2 >> 20) << " MiB");
  CHECK(vm2 <= vm0 + 64 * kMiB);
  // A spike again: served again.
  char* p = static_cast<char*>(am_malloc(2 * kGiB));
  REQUIRE(p != nullptr);
  p[kGiB] = 2;
  am_free(p);
  am_release_free_memory();
  CHECK(vm_size() <= vm0 + 64 * kMiB);
}

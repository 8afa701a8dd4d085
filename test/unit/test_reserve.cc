// Reserve, then commit (heap/system_alloc.h; issue 13): the heap's regions are
// carved from large reservations, so a big heap is a handful of mappings, and
// guard pages do not split them (MADV_GUARD_INSTALL). Counted as lines of
// /proc/self/maps before and after. Before this, every 2 MiB region was a
// mapping of its own with a hole beside it (about 514 mappings per GiB of
// small objects; a 64 GiB heap of 16 MiB buffers, 4,096 mappings).
#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "child_process.h"
#include "core/config.h"
#include "heap/page_heap.h"
#include "heap/system_alloc.h"

using namespace am;

namespace {

size_t mappings() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

}  // namespace

TEST_CASE("reserve: a 2 GiB heap of 60 KiB objects adds at most 8 mappings per GiB", "[reserve]") {
  constexpr size_t kObj = 60 << 10;
  constexpr size_t kCount = (size_t{2} << 30) / kObj;
  std::vector<void*> objs;
  objs.reserve(kCount);
  size_t before = mappings();
  for (size_t i = 0; i < kCount; ++i) {
    char* p = static_cast<char*>(am_malloc(kObj));
    REQUIRE(p != nullptr);
    p[0] = 1;  // touched, sparsely
    objs.push_back(p);
  }
  size_t after = mappings();
  INFO("mappings before " << before << ", after " << after << " (" << kCount << " objects of 60 KiB)");
  CHECK(after <= before + 16);
  for (void* p : objs) am_free(p);
  am_release_free_memory();
}

TEST_CASE("reserve: a 64 GiB virtual heap, touched sparsely, stays under 1,000 mappings", "[reserve]") {
  constexpr size_t kBlock = size_t{16} << 20;
  constexpr size_t kCount = (size_t{64} << 30) / kBlock;
  std::vector<void*> blocks;
  blocks.reserve(kCount);
  size_t before = mappings();
  for (size_t i = 0; i < kCount; ++i) {
    char* p = static_cast<char*>(am_malloc(kBlock));
    REQUIRE(p != nullptr);
    if (i % 16 == 0) p[kBlock / 2] = 1;  // one page in 256 MiB
    blocks.push_back(p);
  }
  size_t after = mappings();
  INFO("mappings before " << before << ", after " << after << "; reserved "
                          << (system_reserved_bytes() >> 30) << " GiB, committed "
                          << (system_mapped_bytes() >> 30) << " GiB");
  CHECK(after < 1000);
  CHECK(after <= before + 64);
  CHECK(system_reserved_bytes() >= system_mapped_bytes());
  for (void* p : blocks) am_free(p);
  am_release_free_memory();
}

TEST_CASE("reserve: guard pages do not split the mapping where the kernel has MADV_GUARD_INSTALL", "[reserve]") {
  // Probe the kernel on a scratch mapping of our own.
  void* probe = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(probe != MAP_FAILED);
  bool have = madvise(probe, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
  munmap(probe, 1 << 16);
  if (!have) {
    WARN("kernel without MADV_GUARD_INSTALL: the mprotect budget applies instead");
    return;
  }
  ChildResult r = run_in_child([] {
    // 20,000 live large objects with a guard page each: with mprotect that
    // was 40,000 more mappings (the kernel's limit is 65,530).
    am_option_set("AMMALLOC_GUARD_PAGES", 1);
    size_t before = mappings();
    std::vector<char*> v;
    for (int i = 0; i < 20000; ++i) {
      char* p = static_cast<char*>(am_malloc(300 << 10));
      if (p == nullptr) _exit(2);
      p[0] = 1;
      v.push_back(p);
    }
    size_t after = mappings();
    if (after > before + 64) {
      fprintf(stderr, "mappings %zu -> %zu\n", before, after);
      _exit(3);
    }
    if (system_guard_pages_skipped() != 0) _exit(4);
    for (char* p : v) am_free(p);
    // A guard faults: the byte after the object's usable size.
    char* p = static_cast<char*>(am_malloc(300 << 10));
    size_t usable = am_malloc_usable_size(p);
    p[usable - 1] = 1;
    p[usable + 4095] = 1;  // in the guard page
    _exit(5);
  });
  INFO(r.describe());
  CHECK(WIFSIGNALED(r.status));
  CHECK(WTERMSIG(r.status) == SIGSEGV);
}

// Reserve, then commit (heap/system_alloc.h; issue 13): the heap's regions are
// carved from large reservations, so a big heap is a handful of mappings, and
// guard pages do not split them (MADV_GUARD_INSTALL). Counted as lines of
// /proc/self/maps before and after. Before this, every 2 MiB region was a
// mapping of its own with a hole beside it (about 514 mappings per GiB of
// small objects; a 64 GiB heap of 16 MiB buffers, 4,096 mappings).
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

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

// A kernel before Linux 6.13, simulated: a seccomp filter makes
// madvise(MADV_GUARD_INSTALL) fail with EINVAL, as an older kernel does.
bool refuse_guard_install() {
  constexpr unsigned kMadvGuardInstall = 102;
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kMadvGuardInstall, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// In a child: n live 300 KiB objects with AMMALLOC_GUARD_PAGES on (exits 2
// if one fails).
std::vector<char*> guarded_objects(int n) {
  am_option_set("AMMALLOC_GUARD_PAGES", 1);
  std::vector<char*> v;
  for (int i = 0; i < n; ++i) {
    char* p = static_cast<char*>(am_malloc(300 << 10));
    if (p == nullptr) _exit(2);
    p[0] = 1;
    v.push_back(p);
  }
  return v;
}

// In a child: frees v, then writes past a new object's usable size, into its
// guard page (the child dies of SIGSEGV there, or exits 5).
[[noreturn]] void free_and_overrun(std::vector<char*>& v) {
  for (char* p : v) am_free(p);
  char* p = static_cast<char*>(am_malloc(300 << 10));
  size_t usable = am_malloc_usable_size(p);
  p[usable - 1] = 1;
  p[usable + 4095] = 1;  // in the guard page
  _exit(5);
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
    size_t before = mappings();
    std::vector<char*> v = guarded_objects(20000);
    size_t after = mappings();
    if (after > before + 64) {
      fprintf(stderr, "mappings %zu -> %zu\n", before, after);
      _exit(3);
    }
    if (system_guard_pages_skipped() != 0) _exit(4);
    free_and_overrun(v);  // a guard faults
  });
  INFO(r.describe());
  CHECK(WIFSIGNALED(r.status));
  CHECK(WTERMSIG(r.status) == SIGSEGV);
}

TEST_CASE("reserve: without MADV_GUARD_INSTALL, mprotect guards stop at their budget, said once and counted",
          "[reserve]") {
  ChildResult r = run_in_child([] {
    if (!refuse_guard_install()) _exit(9);
    size_t before = mappings();
    // 17,000 live large objects: past the 16,384 guards the budget allows.
    std::vector<char*> v = guarded_objects(17000);
    size_t after = mappings();
    size_t skipped = 0;
    am_get_numeric_property("ammalloc.guard_pages_skipped", &skipped);
    fprintf(stderr, "mappings %zu -> %zu, skipped %zu\n", before, after, skipped);
    // Each mprotect guard splits a mapping (about two more each); the budget
    // keeps the total far below vm.max_map_count (65,530).
    if (after > before + 2 * 16384 + 256) _exit(3);
    if (skipped < 17000 - 16384 || skipped > 17000) _exit(4);
    free_and_overrun(v);  // the guards that were placed still fault
  });
  INFO(r.describe());
  if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 9) {
    WARN("seccomp filters are not allowed here: the mprotect fallback is not exercised");
    return;
  }
  CHECK(WIFSIGNALED(r.status));
  CHECK(WTERMSIG(r.status) == SIGSEGV);
  // Said once.
  size_t said = 0;
  for (size_t at = r.err.find("guard pages: mapping budget used"); at != std::string::npos;
       at = r.err.find("guard pages: mapping budget used", at + 1))
    ++said;
  CHECK(said == 1);
}

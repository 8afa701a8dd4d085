// NUMA placement (lib/core/numa_topology.h, the partitions of lib/heap/page_heap.h).
//
// Runs on any machine, even a single-node one. Each case runs a hidden case of
// this binary in a fresh process with AMMALLOC_NUMA* set (the topology is
// fixed at start-up):
//  - local: get_mempolicy(MPOL_F_ADDR) on touched allocations (small and large)
//    reports MPOL_PREFERRED for the node of the CPU, and
//    get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR) that the page is on that node;
//  - interleave: the policy is MPOL_INTERLEAVE over the nodes with memory;
//  - off: no policy (MPOL_DEFAULT);
//  - AMMALLOC_NUMA_FAKE_NODES=4: four partitions; a thread "on node p" gets
//    spans of partition p (memory bound to the real node); a span allocated on
//    node 2 and freed by a thread on node 0 goes back to partition 2; every
//    partition's bytes add up;
//  - degradation: with get_mempolicy/mbind denied (seccomp, as in a default
//    container profile), numa_available() < 0 and NUMA is off, and the heap
//    works as usual.
// Where the kernel denies the NUMA API to this test itself, the policy checks
// are skipped with a message.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "core/numa_topology.h"
#include "core/options.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "heap/system_alloc.h"

using namespace am;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

SelfRun run_numa_child(const char* name, const std::vector<std::pair<const char*, const char*>>& env) {
  return run_self(name, {"AMMALLOC_NUMA", "AMMALLOC_NUMA_FAKE_NODES"}, env);
}

void expect_child_ok(const char* name, const std::vector<std::pair<const char*, const char*>>& env) {
  SelfRun r = run_numa_child(name, env);
  INFO("child '" << name << "' said:\n" << r.out);
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 0);
  size_t at = r.out.find("SKIPPED:");
  if (at != std::string::npos) WARN(r.out.substr(at, r.out.find('\n', at) - at));
}

void touch(void* p, size_t n) {
  volatile char* c = static_cast<char*>(p);
  for (size_t i = 0; i < n; i += 4096) c[i] = 1;
  c[n - 1] = 1;
}

// The policy governing addr and the nodes of its mask.
int policy_of(const void* addr, unsigned long* mask) {
  int mode = -1;
  REQUIRE(os::get_mempolicy(&mode, mask, 1024, addr, os::kMpolFAddr) == 0);
  return mode;
}

// The node the (touched) page at addr is on.
int node_of_page(const void* addr) {
  int node = -1;
  REQUIRE(os::get_mempolicy(&node, nullptr, 0, addr, os::kMpolFNode | os::kMpolFAddr) == 0);
  return node;
}

bool has_node(const unsigned long* mask, int node) {
  return (mask[static_cast<size_t>(node) / (8 * sizeof(long))] >> (static_cast<size_t>(node) % (8 * sizeof(long)))) & 1;
}

// Starts the heap and returns the settled topology.
NumaInfo start_heap() {
  void* p = am_malloc(16);
  REQUIRE(p != nullptr);
  am_free(p);
  NumaInfo in = page_heap_numa_info();
  REQUIRE(in.settled);
  printf("numa: requested %s, in force %s, %d partition(s), api %d, max node %d, %d memory node(s)\n",
         numa_mode_name(in.requested), numa_mode_name(in.mode), in.partitions, in.api ? 1 : 0, in.max_node,
         in.memory_nodes);
  return in;
}

// Every partition's bytes add up, and the partitions add up to the heap.
void check_partitions_add_up() {
  size_t mapped = 0;
  for (int p = 0; p < page_heap_partitions(); ++p) {
    PageHeapPartitionStats s = page_heap_partition_stats(p);
    INFO("partition " << p);
    CHECK(s.mapped == s.free_bytes + s.released_bytes + s.small_span_bytes + s.large_bytes);
    mapped += s.mapped;
  }
  CHECK(mapped == system_mapped_bytes());
}

// get_mempolicy/mbind fail with EPERM from now on (the default container
// seccomp profile without CAP_SYS_NICE does the same).
bool deny_numa_syscalls() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_get_mempolicy, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mbind, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

}  // namespace

// --- children ---------------------------------------------------------------------

TEST_CASE("numa child: local", "[.][numa_child]") {
  NumaInfo in = start_heap();
  CHECK(in.requested == kNumaLocal);
  if (!in.api) {
    printf("SKIPPED: the NUMA API is not available here (numa_available() < 0 or no libnuma): NUMA is off\n");
    CHECK(in.mode == kNumaOff);
    return;
  }
  REQUIRE(in.mode == kNumaLocal);
  CHECK(in.partitions == in.max_node + 1);
  unsigned cpu = 0, node = 0;
  REQUIRE(os::getcpu(&cpu, &node));
  // Pin the partition to the node we check against (the thread may migrate).
  numa_set_thread_partition(static_cast<int>(node));
  for (size_t size : {size_t{64}, size_t{4096}, 3 * kMiB, 64 * kMiB}) {
    INFO("allocation of " << size << " bytes");
    void* p = am_malloc(size);
    REQUIRE(p != nullptr);
    touch(p, size);
    unsigned long mask[16] = {};
    int mode = policy_of(p, mask);
    printf("%zu bytes at %p: policy %d, node %d (CPU %u on node %u)\n", size, p, mode, node_of_page(p), cpu, node);
    CHECK(mode == os::kMpolPreferred);
    int want = numa_node_of_partition(static_cast<int>(node));
    CHECK(want == static_cast<int>(node));
    CHECK(has_node(mask, want));
    CHECK(node_of_page(p) == want);
    if (size >= kMiB) CHECK(pagemap_span(reinterpret_cast<uintptr_t>(p))->node == node);
    am_free(p);
  }
  check_partitions_add_up();
}

TEST_CASE("numa child: interleave", "[.][numa_child]") {
  NumaInfo in = start_heap();
  CHECK(in.requested == kNumaInterleave);
  if (!in.api) {
    printf("SKIPPED: the NUMA API is not available here: NUMA is off\n");
    return;
  }
  REQUIRE(in.mode == kNumaInterleave);
  CHECK(in.partitions == 1);
  for (size_t size : {size_t{64}, 16 * kMiB}) {
    void* p = am_malloc(size);
    REQUIRE(p != nullptr);
    touch(p, size);
    unsigned long mask[16] = {};
    CHECK(policy_of(p, mask) == os::kMpolInterleave);
    int nodes = 0;
    for (int n = 0; n <= in.max_node; ++n) nodes += has_node(mask, n);
    CHECK(nodes == in.memory_nodes);
    // Pages are spread over the mask: each page is on one of its nodes, and
    // with more than one node, a 16 MiB buffer's pages are on more than one.
    int seen = 0;
    unsigned long seen_mask[16] = {};
    for (size_t off = 0; off < size; off += 4096) {
      int node = node_of_page(static_cast<char*>(p) + off);
      CHECK(has_node(mask, node));
      if (!has_node(seen_mask, node)) {
        seen_mask[static_cast<size_t>(node) / 64] |= 1ul << (node % 64);
        ++seen;
      }
    }
    if (size > kMiB) CHECK(seen == (in.memory_nodes > 1 ? in.memory_nodes : 1));
    am_free(p);
  }
}

TEST_CASE("numa child: off", "[.][numa_child]") {
  NumaInfo in = start_heap();
  CHECK(in.mode == kNumaOff);
  CHECK(in.partitions == 1);
  if (!in.api) return;
  void* p = am_malloc(3 * kMiB);
  touch(p, 3 * kMiB);
  unsigned long mask[16] = {};
  CHECK(policy_of(p, mask) == os::kMpolDefault);
  am_free(p);
}

TEST_CASE("numa child: four fake nodes", "[.][numa_child]") {
  NumaInfo in = start_heap();
  REQUIRE(in.mode == kNumaLocal);
  REQUIRE(in.partitions == 4);
  REQUIRE(page_heap_partitions() == 4);
  // Partition choice: a thread on node p gets spans of partition p.
  const uint32_t cl = size_to_class(1024);
  for (int p = 0; p < 4; ++p) {
    INFO("partition " << p);
    numa_set_thread_partition(p);
    PageHeapPartitionStats before = page_heap_partition_stats(p);
    void* big = am_malloc(3 * kMiB);
    REQUIRE(big != nullptr);
    touch(big, 3 * kMiB);
    Span* s = pagemap_span(reinterpret_cast<uintptr_t>(big));
    REQUIRE(s != nullptr);
    CHECK(s->node == p);
    Span* small = page_heap_alloc_small(cl);
    REQUIRE(small != nullptr);
    CHECK(small->node == p);
    PageHeapPartitionStats after = page_heap_partition_stats(p);
    CHECK(after.large_bytes == before.large_bytes + s->bytes());
    CHECK(after.small_span_bytes == before.small_span_bytes + small->bytes());
    if (in.api) {
      // Bound to a real node (round-robin over the real ones).
      unsigned long mask[16] = {};
      CHECK(policy_of(big, mask) == os::kMpolPreferred);
      CHECK(numa_node_of_partition(p) >= 0);
      CHECK(has_node(mask, numa_node_of_partition(p)));
      CHECK(node_of_page(big) == numa_node_of_partition(p));
    }
    page_heap_free_small(small);
    am_free(big);
    CHECK(page_heap_partition_stats(p).large_bytes == before.large_bytes);
  }
  check_partitions_add_up();

  // Cross-node free: allocated on node 2, freed by a thread on node 0.
  numa_set_thread_partition(2);
  void* q = am_malloc(5 * kMiB);
  REQUIRE(q != nullptr);
  Span* qs = pagemap_span(reinterpret_cast<uintptr_t>(q));
  REQUIRE(qs->node == 2);
  const size_t bytes = qs->bytes();
  PageHeapPartitionStats p0 = page_heap_partition_stats(0), p2 = page_heap_partition_stats(2);
  std::thread([&] {
    numa_set_thread_partition(0);
    am_free(q);
  }).join();
  PageHeapPartitionStats p0b = page_heap_partition_stats(0), p2b = page_heap_partition_stats(2);
  CHECK(p2b.large_bytes == p2.large_bytes - bytes);
  CHECK(p2b.free_bytes == p2.free_bytes + bytes);
  CHECK(p0b.free_bytes == p0.free_bytes);
  CHECK(p0b.large_bytes == p0.large_bytes);
  // And it is reused by node 2, not by node 0.
  numa_set_thread_partition(0);
  void* r0 = am_malloc(5 * kMiB);
  CHECK(pagemap_span(reinterpret_cast<uintptr_t>(r0))->node == 0);
  CHECK(r0 != q);
  numa_set_thread_partition(2);
  void* r2 = am_malloc(5 * kMiB);
  CHECK(pagemap_span(reinterpret_cast<uintptr_t>(r2))->node == 2);
  am_free(r0);
  am_free(r2);

  // Without a pinned partition, the CPU decides (CPU c: partition c % 4).
  numa_set_thread_partition(-1);
  int p = numa_current_partition();
  CHECK(p >= 0);
  CHECK(p < 4);
  check_partitions_add_up();

  // The report lists the partitions.
  std::vector<char> buf(64 * 1024);
  size_t n = am_stats_text(buf.data(), buf.size());
  std::string text(buf.data(), n < buf.size() ? n : 0);
  CHECK(text.find("NUMA partitions (local, fake topology") != std::string::npos);
  CHECK(text.find("partition  3 node") != std::string::npos);
}

TEST_CASE("numa child: NUMA API denied", "[.][numa_child]") {
  REQUIRE(deny_numa_syscalls());
  NumaInfo in = start_heap();
  CHECK(in.requested == kNumaLocal);
  CHECK_FALSE(in.api);
  CHECK(in.mode == kNumaOff);
  CHECK(in.partitions == 1);
  std::vector<void*> v;
  for (size_t size = 16; size <= 64 * kMiB; size *= 4) {
    void* p = am_malloc(size);
    REQUIRE(p != nullptr);
    touch(p, size);
    v.push_back(p);
  }
  for (void* p : v) am_free(p);
  check_partitions_add_up();
  std::vector<char> buf(64 * 1024);
  size_t n = am_stats_text(buf.data(), buf.size());
  std::string text(buf.data(), n < buf.size() ? n : 0);
  CHECK(text.find("NUMA partitions (off, asked for local, no NUMA API)") != std::string::npos);
}

// --- the cases ------------------------------------------------------------------------

TEST_CASE("numa: local binds each region to the node of the allocating CPU", "[numa]") {
  expect_child_ok("numa child: local", {{"AMMALLOC_NUMA", "local"}});
}

TEST_CASE("numa: interleave spreads pages over the nodes", "[numa]") {
  expect_child_ok("numa child: interleave", {{"AMMALLOC_NUMA", "interleave"}});
}

TEST_CASE("numa: off leaves placement to the kernel", "[numa]") {
  expect_child_ok("numa child: off", {{"AMMALLOC_NUMA", "off"}});
}

TEST_CASE("numa: a fake 4-node topology partitions the page heap; frees go to the owning partition", "[numa]") {
  expect_child_ok("numa child: four fake nodes", {{"AMMALLOC_NUMA", "local"}, {"AMMALLOC_NUMA_FAKE_NODES", "4"}});
}

TEST_CASE("numa: without the NUMA API it degrades to off", "[numa]") {
  expect_child_ok("numa child: NUMA API denied", {{"AMMALLOC_NUMA", "local"}});
}

TEST_CASE("numa: AMMALLOC_NUMA accepts names and numbers, rejects others", "[numa]") {
  const OptionDef& d = kOptionTable[kOptNuma];
  int64_t v = -1;
  CHECK(option_parse(d, "off", &v));
  CHECK(v == kNumaOff);
  CHECK(option_parse(d, "local", &v));
  CHECK(v == kNumaLocal);
  CHECK(option_parse(d, "interleave", &v));
  CHECK(v == kNumaInterleave);
  CHECK(option_parse(d, "2", &v));
  CHECK(v == kNumaInterleave);
  v = -1;
  CHECK_FALSE(option_parse(d, "Local", &v));
  CHECK_FALSE(option_parse(d, "3", &v));
  CHECK_FALSE(option_parse(d, "", &v));
  CHECK(v == -1);
}

// NUMA placement: which page-heap partition serves the calling thread, and how
// each heap region is bound to memory nodes.
//
// Owns: the topology in force and the placement mode. The mode is a decision,
// made here once and lazily (numa_settle, at the page heap's first use after
// the options are loaded) from AMMALLOC_NUMA, AMMALLOC_NUMA_FAKE_NODES and
// what libnuma finds: the page heap needs the partition count before its
// first region, where nothing above it runs, so it is not pushed down by a
// policy. Binding a region per the mode (numa_bind_region, called by the
// system tier) and the partition choice are mechanism. The modes:
//   AMMALLOC_NUMA=local (default): one page-heap partition per node. A region
//     is mapped for one partition and bound to its node with mbind(2)
//     MPOL_PREFERRED before it is touched; page-heap allocations (span refills
//     of the central cache, large objects) come from the partition of the
//     node of the CPU the thread runs on (getcpu(2)); freed spans go back to
//     the partition recorded in the span.
//     Why PREFERRED and not BIND: a strict binding turns one node running out
//     of memory into reclaim or the OOM killer while other nodes have plenty;
//     preferred placement is local whenever the node has memory and remote
//     only then. (get_mempolicy reports the policy and the page's node.)
//   AMMALLOC_NUMA=interleave: one partition; every region MPOL_INTERLEAVE over
//     the nodes we may allocate on (big shared tensors read by every socket).
//   AMMALLOC_NUMA=off: one partition, no mbind (first-touch placement).
// Graceful degradation: built without libnuma (meson -Dnuma=disabled), or
// numa_available() < 0 (kernel without NUMA), or get_mempolicy failing (a
// seccomp profile that denies the NUMA calls), NUMA is off. AMMALLOC_NUMA_FAKE_NODES=N (tests) makes
// `local` behave as if there were N nodes: N partitions, CPU c -> partition
// c % N, regions bound to the real nodes round-robin (node 0 on one node).
//
// libnuma: only numa_available() (one get_mempolicy syscall), numa_max_node()
// and the numa_all_nodes_ptr bitmask are used, none of which allocates (its
// constructor, which does allocate, has run when they are first needed; until
// then, and until the options are loaded, there is one partition and regions
// are not bound). mbind/get_mempolicy/getcpu are raw syscalls in lib/os.
// Locks: numa_settle() and the partition choice run under the page-heap lock;
// the settled values are then read-only (partition count read lock-free).
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

inline constexpr int kMaxNumaPartitions = 64;
enum NumaMode : int { kNumaOff = 0, kNumaLocal = 1, kNumaInterleave = 2 };

struct NumaInfo {
  int requested = kNumaOff;  // AMMALLOC_NUMA
  int mode = kNumaOff;       // in force
  int partitions = 1;
  int fake_nodes = 0;   // AMMALLOC_NUMA_FAKE_NODES (0: real topology)
  bool api = false;     // libnuma present and numa_available() >= 0
  bool settled = false;
  int max_node = 0;     // highest node number (real)
  int memory_nodes = 0; // nodes we may allocate on
  size_t bind_failures = 0;
};

// Decides the topology once the options are loaded and libnuma is initialised;
// before that, one partition. Page-heap lock held. Returns the partition count.
int numa_settle();
// Partitions in force (lock-free; 1 until settled).
int numa_partitions();
// The partition for a page-heap allocation by the calling thread (page-heap
// lock held; settles first). 0 when there is one partition: then without a
// call (every large malloc asks; it was 14 instructions of ~500 a pair).
extern constinit bool g_numa_one_partition;  // settled, with one partition
int numa_current_partition_slow();
inline int numa_current_partition() { return g_numa_one_partition ? 0 : numa_current_partition_slow(); }
// The real node a partition's regions are bound to (-1: not bound).
int numa_node_of_partition(int partition);
// Binds a fresh region per the mode in force (page-heap lock held).
void numa_bind_region(void* p, size_t bytes, int partition);
NumaInfo numa_info();
const char* numa_mode_name(int mode);

// Tests: pins the calling thread to a partition (as if it ran on that node);
// -1 follows the CPU again.
void numa_set_thread_partition(int partition);

}  // namespace am

// NUMA placement (see numa_topology.h).
#include "core/numa_topology.h"

#include <atomic>

#include "base/attributes.h"
#include "core/options.h"
#include "os/os.h"

#if AMMALLOC_HAVE_LIBNUMA
#include <numa.h>
#endif

namespace am {
namespace {

// Node masks up to 1024 nodes (the kernel's default MAX_NUMNODES is 1024).
constexpr size_t kMaskBits = 1024;
constexpr size_t kBitsPerWord = sizeof(unsigned long) * 8;
constexpr size_t kMaskWords = kMaskBits / kBitsPerWord;

struct NumaState {
  NumaInfo info;
  unsigned long memory_mask[kMaskWords] = {};  // nodes we may allocate on
  int partition_node[kMaxNumaPartitions] = {};
};

constinit NumaState g_numa;
constinit std::atomic<int> g_partitions{1};
constinit thread_local AM_TLS_IE int t_partition = -1;

bool mask_has(const unsigned long* mask, size_t bit) {
  return bit < kMaskBits && (mask[bit / kBitsPerWord] >> (bit % kBitsPerWord)) & 1;
}

// The n-th node (0-based, modulo their count) that has memory for us.
int nth_memory_node(int n) {
  if (g_numa.info.memory_nodes == 0) return -1;
  int want = n % g_numa.info.memory_nodes;
  for (size_t b = 0; b < kMaskBits; ++b)
    if (mask_has(g_numa.memory_mask, b) && want-- == 0) return static_cast<int>(b);
  return -1;
}

// Reads what libnuma found; false if it is absent, unusable, or not
// initialised yet (its constructor fills numa_all_nodes_ptr).
bool read_libnuma() {
#if AMMALLOC_HAVE_LIBNUMA
  if (numa_all_nodes_ptr == nullptr) return false;
  if (numa_available() < 0) return true;  // settled: no NUMA API
  // libnuma only treats ENOSYS as "unavailable"; a seccomp profile that denies
  // the NUMA calls (containers without CAP_SYS_NICE) answers EPERM.
  int mode = 0;
  if (os::get_mempolicy(&mode, nullptr, 0, nullptr, 0) != 0) return true;
  g_numa.info.api = true;
  g_numa.info.max_node = numa_max_node();
  const struct bitmask* all = numa_all_nodes_ptr;
  size_t bits = all->size < kMaskBits ? all->size : kMaskBits;
  for (size_t b = 0; b < bits; ++b) {
    if ((all->maskp[b / kBitsPerWord] >> (b % kBitsPerWord)) & 1) {
      g_numa.memory_mask[b / kBitsPerWord] |= 1ul << (b % kBitsPerWord);
      ++g_numa.info.memory_nodes;
    }
  }
  return true;
#else
  return true;  // settled: built without libnuma
#endif
}

}  // namespace

int numa_settle() {
  if (AM_LIKELY(g_numa.info.settled)) return g_numa.info.partitions;
  if (!options_loaded()) return 1;
  if (!read_libnuma()) return 1;
  NumaInfo& in = g_numa.info;
  in.requested = static_cast<int>(option(kOptNuma));
  in.fake_nodes = static_cast<int>(option(kOptNumaFakeNodes));
  in.mode = in.requested;
  // Without the API only the fake topology keeps partitions (for tests on
  // machines or builds without NUMA); nothing is bound then.
  if (!in.api && in.fake_nodes == 0) in.mode = kNumaOff;
  if (in.mode == kNumaLocal) {
    int nodes = in.fake_nodes ? in.fake_nodes : in.max_node + 1;
    in.partitions = nodes < 1 ? 1 : nodes > kMaxNumaPartitions ? kMaxNumaPartitions : nodes;
  } else {
    in.partitions = 1;
  }
  for (int p = 0; p < in.partitions; ++p) {
    if (in.mode != kNumaLocal || !in.api)
      g_numa.partition_node[p] = -1;
    else if (in.fake_nodes)
      g_numa.partition_node[p] = nth_memory_node(p);
    else  // a node without memory (CPUs only): leave placement to first touch
      g_numa.partition_node[p] = mask_has(g_numa.memory_mask, static_cast<size_t>(p)) ? p : -1;
  }
  in.settled = true;
  g_numa_one_partition = in.partitions == 1;
  g_partitions.store(in.partitions, std::memory_order_release);
  return in.partitions;
}

int numa_partitions() { return g_partitions.load(std::memory_order_acquire); }

constinit bool g_numa_one_partition = false;

int numa_current_partition_slow() {
  int n = numa_settle();
  if (n <= 1) return 0;
  if (t_partition >= 0) return t_partition % n;
  unsigned cpu = 0, node = 0;
  if (!os::getcpu(&cpu, &node)) return 0;
  unsigned v = g_numa.info.fake_nodes ? cpu : node;
  return static_cast<int>(v % static_cast<unsigned>(n));
}

int numa_node_of_partition(int partition) {
  if (!g_numa.info.settled || partition < 0 || partition >= g_numa.info.partitions) return -1;
  return g_numa.partition_node[partition];
}

void numa_bind_region(void* p, size_t bytes, int partition) {
  const NumaInfo& in = g_numa.info;
  if (!in.settled || !in.api) return;
  long rc = 0;
  if (in.mode == kNumaLocal) {
    int node = numa_node_of_partition(partition);
    if (node < 0) return;
    unsigned long mask[kMaskWords] = {};
    mask[static_cast<size_t>(node) / kBitsPerWord] = 1ul << (static_cast<size_t>(node) % kBitsPerWord);
    rc = os::mbind(p, bytes, os::kMpolPreferred, mask, static_cast<unsigned long>(node) + 1);
  } else if (in.mode == kNumaInterleave && in.memory_nodes > 0) {
    rc = os::mbind(p, bytes, os::kMpolInterleave, g_numa.memory_mask, kMaskBits);
  }
  if (rc != 0) ++g_numa.info.bind_failures;
}

NumaInfo numa_info() {
  NumaInfo in = g_numa.info;
  if (!in.settled) {
    in.requested = static_cast<int>(option(kOptNuma));
    in.fake_nodes = static_cast<int>(option(kOptNumaFakeNodes));
  }
  return in;
}

const char* numa_mode_name(int mode) {
  switch (mode) {
    case kNumaLocal: return "local";
    case kNumaInterleave: return "interleave";
    default: return "off";
  }
}

void numa_set_thread_partition(int partition) { t_partition = partition; }

}  // namespace am

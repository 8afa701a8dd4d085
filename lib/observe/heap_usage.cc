// The heap's resident and huge-page bytes from smaps (see heap_usage.h).
#include "observe/heap_usage.h"

#include <cstdint>

#include "core/pagemap.h"
#include "heap/hugepage_map.h"
#include "os/proc.h"

namespace am {
namespace {

// Heap bytes inside [start, end). Address space without a pagemap leaf holds
// no resident heap (a region gets its leaves before its first span), so it is
// skipped a leaf (2 GiB) at a time: a mapping of terabytes (a sanitizer's
// shadow) costs a few thousand steps, not millions.
size_t heap_bytes_in(uintptr_t start, uintptr_t end) {
  constexpr uintptr_t kLeafBytes = uintptr_t{1} << (kPageShift + kLeafBits);
  size_t total = 0;
  for (uintptr_t a = start & ~(kHugePageSize - 1); a < end && !(a >> kAddressBits);) {
    if (pagemap_leaf(a) == nullptr) {
      a = (a & ~(kLeafBytes - 1)) + kLeafBytes;
      continue;
    }
    if (hugepage_is_heap(a)) {
      uintptr_t lo = a < start ? start : a, hi = a + kHugePageSize > end ? end : a + kHugePageSize;
      total += hi - lo;
    }
    a += kHugePageSize;
  }
  return total;
}

bool add_record(const os::SmapsRecord& r, void* arg) {
  auto* usage = static_cast<HugePageUsage*>(arg);
  size_t heap = r.end > r.start ? heap_bytes_in(r.start, r.end) : 0;
  if (heap == 0) return true;
  usage->rss += r.rss < heap ? r.rss : heap;
  usage->anon_huge += r.anon_huge < heap ? r.anon_huge : heap;
  return true;
}

}  // namespace

HugePageUsage hugepage_heap_usage() {
  // One smaps record is ~25 short lines; 4 KiB holds any of them but a path
  // longer than that, which is cut (only the addresses at its start matter).
  char buf[4096];
  HugePageUsage usage;
  usage.ok = os::for_each_smaps_record(buf, sizeof buf, add_record, &usage);
  return usage;
}

}  // namespace am

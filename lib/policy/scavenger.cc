// Scavenger policy (see scavenger.h).
#include "policy/scavenger.h"

#include "os/os.h"

namespace am {

ReleaseRule scavenger_rule(uint64_t freed_before_ns, uint64_t now_ns, bool thp_active) {
  ReleaseRule r;
  r.freed_before_ns = freed_before_ns;
  // A wholly free region of 1 GiB or more, idle as long, is unmapped.
  r.unmap_before_ns = freed_before_ns;
  if (!thp_active) return r;
  r.by_huge_page = true;
  r.sparse_live_pages = kScavengeSparseLivePages;
  // The caller's cutoff is now - release delay; dense ranges wait longer.
  r.dense_before_ns = freed_before_ns;
  if (freed_before_ns < now_ns) {
    uint64_t extra = (now_ns - freed_before_ns) * kScavengeDenseExtraNum / kScavengeDenseExtraDen;
    r.dense_before_ns = freed_before_ns > extra ? freed_before_ns - extra : 0;
  }
  return r;
}

size_t scavenger_release(uint64_t freed_before_ns) {
  return page_heap_release(scavenger_rule(freed_before_ns, os::now_ns(), thp_active()));
}

}  // namespace am

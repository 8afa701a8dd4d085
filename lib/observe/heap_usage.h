// How much of the heap the kernel really backs, and with what: the resident
// bytes of the heap's mappings and their share in transparent huge pages,
// measured from /proc/self/smaps (os/proc.h) for the stats report and the
// ammalloc.heap_rss_bytes / ammalloc.hugepage_bytes properties.
//
// Owns: the attribution of smaps records to the heap. A record counts when its
// mapping holds heap regions (the per-2 MiB heap bit, hugepage_is_heap in
// heap/hugepage_map.h); a mapping that also holds foreign memory (the kernel
// merges neighbouring anonymous mappings with equal flags) counts at most its
// heap bytes.
// Invariants: no allocation (smaps is streamed through a stack buffer); reads
// only lock-free state (the heap bit is set before a region is handed out and
// never cleared). Locks: none. Cost: one pass over smaps, so only on request.
#pragma once

#include <cstddef>

namespace am {

struct HugePageUsage {
  size_t rss = 0;        // resident bytes of the heap's mappings
  size_t anon_huge = 0;  // of which in transparent huge pages
  bool ok = false;       // smaps could be read
};
HugePageUsage hugepage_heap_usage();

}  // namespace am

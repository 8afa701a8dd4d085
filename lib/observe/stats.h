// Statistics: one consistent-as-possible snapshot of every tier, the text report
// (gperftools layout) and the numeric properties.
//
// Owns: the arithmetic that makes the MALLOC: lines add up exactly:
//   virtual  = heap mapped + metadata
//   actual   = virtual - released
//   in use   = actual - page heap free - central - transfer - thread - metadata
// Each tier is read under its own lock, one after another; with threads
// allocating meanwhile the figures are approximate, in a quiet process exact.
#pragma once

#include <malloc.h>

#include <cstddef>

namespace am {

struct HeapStats {
  size_t in_use = 0;
  size_t pageheap_free = 0;
  size_t central_free = 0;
  size_t transfer_free = 0;
  size_t thread_free = 0;
  size_t metadata = 0;
  size_t actual = 0;
  size_t released = 0;
  size_t virtual_total = 0;
  size_t heap_mapped = 0;
  size_t peak_in_use_spans = 0;
  size_t large_count = 0;
  size_t large_bytes = 0;
  size_t free_spans = 0;
  size_t largest_free = 0;
  size_t thread_caches = 0;
  size_t resident = 0;       // heap bytes mapped and not released
  size_t resident_peak = 0;
  size_t central_lock_acquisitions = 0;
  size_t transfer_hits = 0;    // batches the transfer cache handed over
  size_t transfer_misses = 0;  // batch operations it sent to the central cache
  size_t background_wakeups = 0;
  size_t scavenger_released = 0;
  size_t gc_runs = 0;
  size_t gc_caches_reclaimed = 0;
  size_t gc_bytes_reclaimed = 0;
  // From /proc/self/smaps (only when asked for: it is read line by line).
  size_t hugepage_bytes = 0;  // heap in transparent huge pages (AnonHugePages)
  size_t heap_rss = 0;        // heap resident as the kernel counts it (Rss)
  size_t numa_partitions = 0;
  size_t offset_released = 0;  // released by the page heap's growth offset
  size_t large_cache = 0;  // the page heap's large-span cache (in pageheap_free too)
  size_t guard_pages_skipped = 0;  // AMMALLOC_GUARD_PAGES: guards left out (mprotect budget used)
};

// with_smaps: also measure the heap's huge pages from /proc/self/smaps.
HeapStats stats_snapshot(bool with_smaps = false);
// Writes the report; returns the length needed (like snprintf).
size_t stats_text(char* buf, size_t len);
// The same figures as one JSON object on one line (am_stats_json): every
// numeric property under its name, plus version and pid.
size_t stats_json(char* buf, size_t len);
// AMMALLOC_STATS_FORMAT's values (the order of options.cc's choices).
inline constexpr int kStatsFormatText = 0, kStatsFormatJson = 1;
// Writes the report (AMMALLOC_STATS_FORMAT) to a file descriptor (malloc_stats,
// stats at exit and on the signal). fd 2 means the report's destination:
// AMMALLOC_STATS_FILE (appended) when set, else stderr.
void stats_print(int fd);
// glibc's legacy struct mallinfo (int fields, clamped), for the interposed mallinfo().
struct mallinfo mallinfo_legacy();

}  // namespace am

// Statistics report and numeric properties (see stats.h).
#include "observe/stats.h"

#include <limits.h>
#include <malloc.h>
#include <string.h>

#include "ammalloc/ammalloc.h"
#include "base/log.h"
#include "policy/background.h"
#include "heap/central_cache.h"
#include "heap/hugepage_map.h"
#include "observe/heap_usage.h"
#include "core/meta_arena.h"
#include "core/options.h"
#include "os/files.h"
#include "os/os.h"
#include "heap/page_heap.h"
#include "core/size_class.h"
#include "heap/system_alloc.h"
#include "heap/thread_cache.h"
#include "policy/thread_cache_gc.h"
#include "heap/thread_cache_registry.h"
#include "heap/transfer_cache.h"

namespace am {

HeapStats stats_snapshot(bool with_smaps) {
  HeapStats s;
  PageHeapStats ph = page_heap_stats();
  s.central_free = central_free_bytes();
  s.thread_free = thread_cache_total_bytes();
  s.transfer_free = transfer_cache_free_bytes();
  s.metadata = meta_bytes();
  s.heap_mapped = system_mapped_bytes();
  s.pageheap_free = ph.free_bytes;
  s.released = ph.released_bytes;
  s.virtual_total = s.heap_mapped + s.metadata;
  s.actual = s.virtual_total - s.released;
  size_t held = s.pageheap_free + s.central_free + s.transfer_free + s.thread_free + s.metadata;
  s.in_use = s.actual > held ? s.actual - held : 0;
  s.peak_in_use_spans = ph.peak_in_use_bytes;
  s.large_count = ph.large_count;
  s.large_bytes = ph.large_bytes;
  s.free_spans = ph.free_spans;
  s.largest_free = ph.largest_free_bytes;
  s.thread_caches = thread_cache_count();
  s.resident = ph.resident_bytes;
  s.resident_peak = ph.resident_peak;
  s.central_lock_acquisitions = central_lock_acquisitions();
  TransferCounters tc = transfer_cache_counters();
  s.transfer_hits = tc.hits;
  s.transfer_misses = tc.misses;
  BackgroundCounters bg = background_counters();
  s.background_wakeups = bg.wakeups;
  s.scavenger_released = bg.scavenger_bytes_released;
  GcCounters gc = thread_cache_gc_counters();
  s.gc_runs = gc.runs;
  s.gc_caches_reclaimed = gc.caches_reclaimed;
  s.gc_bytes_reclaimed = gc.bytes_reclaimed;
  s.numa_partitions = static_cast<size_t>(page_heap_partitions());
  s.offset_released = ph.offset_released_bytes;
  s.guard_pages_skipped = system_guard_pages_skipped();
  s.large_cache = ph.cached_bytes;
  if (with_smaps) {
    HugePageUsage hp = hugepage_heap_usage();
    s.hugepage_bytes = hp.anon_huge;
    s.heap_rss = hp.rss;
  }
  return s;
}

namespace {

void line(TextBuffer& t, const char* op, size_t bytes, const char* what) {
  t.str("MALLOC: ").str(op).u64w(bytes, 15).str(" (").fixed(bytes, 1 << 20, 1).str(" MiB) ").str(what).ch('\n');
}

void add_lengths(ThreadCache* tc, void* arg) {
  auto* counts = static_cast<size_t*>(arg);
  for (uint32_t cl = 1; cl < kNumClasses; ++cl)
    counts[cl] += tc->lists[cl].length();
}

void class_table(TextBuffer& t) {
  size_t cached[kNumClasses] = {};
  registry_for_each(add_lengths, cached);
  t.str("------------------------------------------------\n");
  t.str("Size classes (objects; bytes in use = objects in use x class size)\n");
  t.str("class   size  spans   in use objs    in use bytes  central free  thread free  transfer free\n");
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const SizeClassInfo& info = class_info(cl);
    CentralClassStats cs = central_class_stats(cl);
    size_t transfer = transfer_class_objects(cl);
    if (cs.spans == 0 && cached[cl] == 0 && transfer == 0) continue;
    size_t total = cs.spans * info.objects, held = cs.free_objects + cached[cl] + transfer;
    size_t in_use = total > held ? total - held : 0;  // racing threads: clamp
    t.u64w(cl, 5).u64w(info.size, 7).u64w(cs.spans, 7).u64w(in_use, 14).u64w(in_use * info.size, 16);
    t.u64w(cs.free_objects * info.size, 14).u64w(cached[cl] * info.size, 13);
    t.u64w(transfer * info.size, 15).ch('\n');
  }
}

// Huge pages and NUMA: the share of the heap's resident memory the kernel backs
// with transparent huge pages, the modes in force, and each NUMA partition.
void placement_lines(TextBuffer& t, const HeapStats& s) {
  t.str("MALLOC: ").str("  ").u64w(s.hugepage_bytes, 15).str(" (").fixed(s.hugepage_bytes, 1 << 20, 1);
  t.str(" MiB) Bytes of heap RSS in transparent huge pages (");
  t.fixed(s.heap_rss ? s.hugepage_bytes * 1000 / s.heap_rss : 0, 10, 1).str("% of ");
  t.fixed(s.heap_rss, 1 << 20, 1).str(" MiB; THP ").str(thp_enabled() ? "on" : "off");
  t.str(", kernel ").str(thp_kernel_mode_name(thp_kernel_mode())).str(")\n");
  NumaInfo numa = page_heap_numa_info();
  t.str("MALLOC: ").u64w(s.numa_partitions, 17).str("              NUMA partitions (");
  t.str(numa_mode_name(numa.mode));
  if (numa.mode != numa.requested) t.str(", asked for ").str(numa_mode_name(numa.requested));
  if (numa.fake_nodes) t.str(", fake topology");
  if (!numa.api) t.str(", no NUMA API");
  t.str(")\n");
  if (numa.mode == kNumaOff) return;
  for (int p = 0; p < static_cast<int>(s.numa_partitions); ++p) {
    PageHeapPartitionStats ps = page_heap_partition_stats(p);
    t.str("MALLOC:   partition ").u64w(static_cast<uint64_t>(p), 2).str(" node ");
    if (ps.node < 0)
      t.str(" -");
    else
      t.u64w(static_cast<uint64_t>(ps.node), 2);
    t.str(": mapped ").fixed(ps.mapped, 1 << 20, 1).str(" MiB, in use ");
    t.fixed(ps.small_span_bytes + ps.large_bytes, 1 << 20, 1).str(" MiB, free ").fixed(ps.free_bytes, 1 << 20, 1);
    t.str(" MiB, released ").fixed(ps.released_bytes, 1 << 20, 1).str(" MiB\n");
  }
}

}  // namespace

size_t stats_text(char* buf, size_t len) {
  HeapStats s = stats_snapshot(true);
  TextBuffer t(buf, len);
  // First line: which library wrote it (a report pasted into a bug names its version).
  t.str("ammalloc ").str(AMMALLOC_VERSION).str(" statistics, pid ").i64(os::process_id()).ch('\n');
  t.str("------------------------------------------------\n");
  line(t, "  ", s.in_use, "Bytes in use by application");
  line(t, "+ ", s.pageheap_free, "Bytes in page heap freelist");
  line(t, "+ ", s.central_free, "Bytes in central cache freelist");
  line(t, "+ ", s.transfer_free, "Bytes in transfer cache freelist");
  line(t, "+ ", s.thread_free, "Bytes in thread cache freelists");
  line(t, "+ ", s.metadata, "Bytes in malloc metadata");
  t.str("MALLOC:   ------------\n");
  line(t, "= ", s.actual, "Actual memory used (physical + swap)");
  line(t, "+ ", s.released, "Bytes released to OS (aka unmapped)");
  t.str("MALLOC:   ------------\n");
  line(t, "= ", s.virtual_total, "Virtual address space used");
  t.str("MALLOC:\n");
  // Peaks (not part of the sum above): since start or am_reset_peak_memory().
  line(t, "  ", s.peak_in_use_spans, "Peak bytes in spans and large objects (in use + central/thread caches)");
  line(t, "  ", s.resident_peak, "Peak resident heap bytes");
  t.str("MALLOC: ").u64w(s.free_spans, 17).str("              Spans in page heap freelist\n");
  t.str("MALLOC: ").u64w(s.large_count, 17).str("              Large objects in use\n");
  t.str("MALLOC: ").u64w(s.thread_caches, 17).str("              Thread heaps in use\n");
  t.str("MALLOC: ").u64w(kPageSize, 17).str("              Tcmalloc-compatible page size\n");
  t.str("MALLOC: ").u64w(s.central_lock_acquisitions, 17).str("              Central cache lock acquisitions\n");
  t.str("MALLOC: ").u64w(s.transfer_hits, 17).str("              Transfer cache batch hits\n");
  t.str("MALLOC: ").u64w(s.transfer_misses, 17).str("              Transfer cache batch misses\n");
  t.str("MALLOC: ").u64w(s.background_wakeups, 17).str("              Background thread wake-ups\n");
  t.str("MALLOC: ").u64w(s.scavenger_released, 17).str("              Bytes released by the scavenger\n");
  t.str("MALLOC: ").u64w(s.gc_caches_reclaimed, 17).str("              Idle thread caches reclaimed by the GC\n");
  t.str("MALLOC: ").u64w(s.gc_bytes_reclaimed, 17).str("              Bytes reclaimed by the GC\n");
  t.str("MALLOC: ").u64w(s.offset_released, 17).str("              Bytes released to offset heap growth\n");
  placement_lines(t, s);
  class_table(t);
  return t.needed();
}

void stats_print(int fd) {
  // fd 2 is "the report's destination": AMMALLOC_STATS_FILE when it is set
  // (appended: several processes and several reports share one file).
  const char* file = option_string(kOptStatsFile);
  int out = fd;
  if (fd == 2 && file != nullptr && *file != '\0') {
    out = os::open_append(file);
    if (out < 0) {
      char msg[300];
      TextBuffer m(msg, sizeof msg);
      m.str("AMMALLOC_STATS_FILE: cannot open ").str(file).str("; the report goes to stderr");
      log_warning(msg);
      out = 2;
    }
  }
  // 16 KiB holds the summary (~1.7 KiB) and a full class table (96 lines of ~95 chars).
  char buf[16 * 1024];
  size_t n = option(kOptStatsFormat) == kStatsFormatJson ? stats_json(buf, sizeof buf - 1) : stats_text(buf, sizeof buf);
  if (option(kOptStatsFormat) == kStatsFormatJson) {  // JSON Lines: one object per line
    n = n < sizeof buf - 2 ? n : sizeof buf - 2;
    buf[n++] = '\n';
  } else {
    n = n < sizeof buf ? n : sizeof buf - 1;
  }
  os::write_all(out, buf, n);
  if (out != fd) os::close_fd(out);
}

namespace {

struct Property {
  const char* name;
  size_t HeapStats::*field;
  bool smaps = false;  // needs the /proc/self/smaps scan
};

constexpr Property kProperties[] = {
    {"generic.current_allocated_bytes", &HeapStats::in_use},
    {"generic.heap_size", &HeapStats::heap_mapped},
    {"generic.total_physical_bytes", &HeapStats::actual},
    {"generic.peak_memory_usage", &HeapStats::peak_in_use_spans},
    {"ammalloc.pageheap_free_bytes", &HeapStats::pageheap_free},
    {"ammalloc.pageheap_unmapped_bytes", &HeapStats::released},
    {"ammalloc.central_cache_free_bytes", &HeapStats::central_free},
    {"ammalloc.transfer_cache_free_bytes", &HeapStats::transfer_free},
    {"ammalloc.thread_cache_free_bytes", &HeapStats::thread_free},
    {"ammalloc.metadata_bytes", &HeapStats::metadata},
    {"ammalloc.virtual_bytes", &HeapStats::virtual_total},
    {"ammalloc.large_objects", &HeapStats::large_count},
    {"ammalloc.large_object_bytes", &HeapStats::large_bytes},
    {"ammalloc.thread_caches", &HeapStats::thread_caches},
    {"ammalloc.resident_bytes", &HeapStats::resident},
    {"ammalloc.resident_peak_bytes", &HeapStats::resident_peak},
    {"ammalloc.central_lock_acquisitions", &HeapStats::central_lock_acquisitions},
    {"ammalloc.transfer_cache_hits", &HeapStats::transfer_hits},
    {"ammalloc.transfer_cache_misses", &HeapStats::transfer_misses},
    {"ammalloc.background_wakeups", &HeapStats::background_wakeups},
    {"ammalloc.scavenger_bytes_released", &HeapStats::scavenger_released},
    {"ammalloc.gc_runs", &HeapStats::gc_runs},
    {"ammalloc.gc_caches_reclaimed", &HeapStats::gc_caches_reclaimed},
    {"ammalloc.gc_bytes_reclaimed", &HeapStats::gc_bytes_reclaimed},
    {"ammalloc.hugepage_bytes", &HeapStats::hugepage_bytes, true},
    {"ammalloc.heap_rss_bytes", &HeapStats::heap_rss, true},
    {"ammalloc.numa_partitions", &HeapStats::numa_partitions},
    {"ammalloc.growth_offset_bytes_released", &HeapStats::offset_released},
    {"ammalloc.guard_pages_skipped", &HeapStats::guard_pages_skipped},
    {"ammalloc.large_cache_bytes", &HeapStats::large_cache},
};

}  // namespace

size_t stats_json(char* buf, size_t len) {
  HeapStats s = stats_snapshot(true);
  TextBuffer t(buf, len);
  t.str("{\"version\":\"").str(AMMALLOC_VERSION).str("\",\"pid\":").i64(os::process_id());
  // For time series (ammalloc-run --timeline): a monotonic clock and the
  // whole process's resident set beside the heap's own figures.
  t.str(",\"time_ns\":").u64(os::now_ns()).str(",\"process_rss_bytes\":").u64(os::resident_bytes());
  for (const Property& p : kProperties) t.str(",\"").str(p.name).str("\":").u64(s.*p.field);
  t.str(",\"ammalloc.released_bytes\":").u64(s.released);
  t.str(",\"ammalloc.thp\":").str(thp_enabled() ? "true" : "false");
  t.str(",\"ammalloc.thp_kernel_mode\":\"").str(thp_kernel_mode_name(thp_kernel_mode())).str("\"}");
  return t.needed();
}

}  // namespace am

extern "C" {

AM_EXPORT size_t am_stats_json(char* buf, size_t len) { return am::stats_json(buf, len); }


AM_EXPORT size_t am_stats_text(char* buf, size_t len) { return am::stats_text(buf, len); }

AM_EXPORT void am_malloc_stats(void) { am::stats_print(2); }

AM_EXPORT int am_get_numeric_property(const char* name, size_t* value) {
  if (name == nullptr || value == nullptr) return 0;
  for (const am::Property& p : am::kProperties) {
    if (strcmp(p.name, name) == 0) {
      *value = am::stats_snapshot(p.smaps).*p.field;
      return 1;
    }
  }
  return 0;
}

AM_EXPORT struct am_mallinfo2 am_mallinfo2(void) {
  am::HeapStats s = am::stats_snapshot();
  struct am_mallinfo2 mi{};
  mi.arena = s.heap_mapped - s.released;
  mi.ordblks = s.free_spans;
  mi.hblks = s.large_count;
  mi.hblkhd = s.large_bytes;
  mi.usmblks = s.peak_in_use_spans;
  mi.fsmblks = s.central_free + s.transfer_free + s.thread_free;
  mi.uordblks = s.in_use;
  mi.fordblks = s.pageheap_free + mi.fsmblks;
  mi.keepcost = s.pageheap_free;
  return mi;
}

}  // extern "C"

namespace am {
struct mallinfo mallinfo_legacy() {
  // The old struct has int fields; clamp rather than wrap for heaps over 2 GiB.
  struct am_mallinfo2 m = am_mallinfo2();
  auto c = [](size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); };
  struct mallinfo r{};
  r.arena = c(m.arena);
  r.ordblks = c(m.ordblks);
  r.hblks = c(m.hblks);
  r.hblkhd = c(m.hblkhd);
  r.usmblks = c(m.usmblks);
  r.fsmblks = c(m.fsmblks);
  r.uordblks = c(m.uordblks);
  r.fordblks = c(m.fordblks);
  r.keepcost = c(m.keepcost);
  return r;
}
}  // namespace am

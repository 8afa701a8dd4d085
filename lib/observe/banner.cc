// AMMALLOC_VERBOSE banner and the start-up marker (see banner.h).
#include "observe/banner.h"

#include "ammalloc/ammalloc.h"
#include "base/log.h"
#include "core/numa_topology.h"
#include "core/options.h"
#include "heap/hugepage_map.h"
#include "heap/page_heap.h"
#include "os/files.h"
#include "os/os.h"

#ifndef AMMALLOC_CFG_HARDEN
#define AMMALLOC_CFG_HARDEN 0
#endif
#ifndef AMMALLOC_HAVE_LIBNUMA
#define AMMALLOC_HAVE_LIBNUMA 0
#endif

namespace am {

size_t banner_text(char* buf, size_t len) {
  TextBuffer t(buf, len);
  t.str("ammalloc ").str(AMMALLOC_VERSION).str(": pid ").i64(os::process_id());
  // Build options: the meson options that change the library's behaviour.
  t.str("; build page_shift=").i64(AMMALLOC_CFG_PAGE_SHIFT);
  t.str(" harden=").i64(AMMALLOC_CFG_HARDEN).str(" libnuma=").str(AMMALLOC_HAVE_LIBNUMA ? "yes" : "no");
#ifdef AM_DEBUG
  t.str(" debug_checks=1");
#else
  t.str(" debug_checks=0");
#endif
  t.str("; THP ").str(thp_enabled() ? "on" : "off");
  t.str(" (kernel ").str(thp_kernel_mode_name(thp_kernel_mode())).ch(')');
  NumaInfo numa = page_heap_numa_info();
  t.str("; NUMA ").str(numa_mode_name(numa.settled ? numa.mode : numa.requested));
  if (!numa.settled) t.str(" (asked for; settles at the first page-heap use)");
  else if (numa.mode != numa.requested) t.str(" (asked for ").str(numa_mode_name(numa.requested)).ch(')');
  return t.needed();
}

void banner_init() {
  if (option(kOptVerbose)) {
    char buf[512];
    size_t n = banner_text(buf, sizeof buf - 1);
    n = n < sizeof buf - 2 ? n : sizeof buf - 2;
    buf[n] = '\n';
    os::write_all(2, buf, n + 1);
    for (int i = 0; i < kNumOptions; ++i) {
      auto id = static_cast<OptionId>(i);
      char value[256];
      option_format(id, value, sizeof value);
      char line[512];
      TextBuffer t(line, sizeof line);
      t.str("ammalloc: option ").str(kOptionTable[i].name).ch('=').str(value);
      t.str(" (").str(option_source_name(option_source(id))).str(")\n");
      os::write_all(2, t.data(), t.held());
    }
  }
  const char* marker = option_string(kOptStartedFile);
  if (marker != nullptr && *marker != '\0') {
    int fd = os::open_append(marker);
    if (fd < 0) {
      char msg[256];
      TextBuffer m(msg, sizeof msg);
      m.str("AMMALLOC_STARTED_FILE: cannot open ").str(marker);
      log_warning(msg);
      return;
    }
    char exe[512];
    if (os::self_exe_path(exe, sizeof exe) < 0) exe[0] = '\0';
    char line[700];
    TextBuffer t(line, sizeof line);
    t.str("ammalloc ").str(AMMALLOC_VERSION).str(" pid ").i64(os::process_id()).ch(' ').str(exe).ch('\n');
    os::write_all(fd, t.data(), t.held());  // one write: O_APPEND keeps lines whole
    os::close_fd(fd);
  }
}

}  // namespace am

// Signal handlers for the stats report and heap profiles (see stats_signal.h).
#include "observe/stats_signal.h"

#include <errno.h>
#include <signal.h>

#include "base/log.h"
#include "base/spinlock.h"
#include "core/options.h"
#include "os/files.h"
#include "os/os.h"
#include "observe/profiler.h"
#include "observe/stats.h"
#include "heap/thread_cache.h"

namespace am {

constinit std::atomic<uint32_t> g_signal_pending{0};

namespace {

bool safe_to_lock() { return t_locks_held == 0 && (tls_cache.seq & 1) == 0; }

void note(const char* what) {
  char buf[160];
  TextBuffer t(buf, sizeof buf);
  t.str("ammalloc: signal arrived inside the allocator; ").str(what).str(" at the next slow path\n");
  os::write_all(2, t.data(), t.held());
}

void on_stats_signal(int) {
  int saved = errno;
  if (safe_to_lock()) {
    stats_print(2);
  } else {
    g_signal_pending.fetch_or(kPendingStats, std::memory_order_relaxed);
    // With AMMALLOC_STATS_FILE the reports go to a file (ammalloc-run
    // --timeline asks ten times a second): no note on the program's stderr.
    const char* file = option_string(kOptStatsFile);
    if (file == nullptr || *file == '\0') note("statistics report");
  }
  errno = saved;
}

void on_profile_signal(int) {
  int saved = errno;
  if (!(safe_to_lock() && profiler_dump_from_signal("signal"))) {
    g_signal_pending.fetch_or(kPendingProfile, std::memory_order_relaxed);
    note("heap profile");
  }
  errno = saved;
}

// SIGTERM/SIGINT while profiling, when the program had no handler of its own
// (checked at init, before main in a preloaded program; a handler the program
// installs later replaces this one): the profile of the moment the process
// was stopped (a server killed by its orchestrator never reaches exit's
// profile), then the default action. Only when this thread holds no
// allocator lock; otherwise a note and the default action.
void on_terminate(int signo) {
  const char* reason = signo == SIGTERM ? "SIGTERM" : "SIGINT";
  if (!(safe_to_lock() && profiler_dump_from_signal(reason))) {
    char buf[160];
    TextBuffer t(buf, sizeof buf);
    t.str("ammalloc: ").str(reason).str(" arrived inside the allocator; no heap profile\n");
    os::write_all(2, t.data(), t.held());
  }
  os::reraise_default(signo);
}

void install(OptionId id, void (*handler)(int)) {
  int signo = static_cast<int>(option(id));
  if (signo <= 0) return;
  if (!os::install_signal_handler(signo, handler)) {
    char buf[128];
    TextBuffer t(buf, sizeof buf);
    t.str(kOptionTable[id].name).str(": cannot install a handler for signal ").i64(signo);
    log_warning(buf);
  }
}

}  // namespace

void signals_init() {
  install(kOptStatsSignal, on_stats_signal);
  install(kOptHeapProfileSignal, on_profile_signal);
  if (profiler_running()) {
    for (int signo : {SIGTERM, SIGINT}) {
      if (signo == option(kOptStatsSignal) || signo == option(kOptHeapProfileSignal)) continue;
      if (os::signal_is_default(signo)) os::install_signal_handler(signo, on_terminate);
    }
  }
}

void signals_service() {
  uint32_t work = g_signal_pending.exchange(0, std::memory_order_acq_rel);
  if (work & kPendingStats) stats_print(2);
  if (work & kPendingProfile) profiler_dump("signal");
}

}  // namespace am

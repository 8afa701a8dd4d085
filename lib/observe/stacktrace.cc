// Stack capture with libunwind (see stacktrace.h).
#include "observe/stacktrace.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <atomic>
#include <cstdint>

#include "base/attributes.h"
#include "core/options.h"
#include "observe/sampler.h"

// Bounds of the am_entry section, defined by the linker for this image (the
// shared object, or the executable the core is linked into).
extern "C" {
extern const char __start_am_entry[] __attribute__((visibility("hidden")));
extern const char __stop_am_entry[] __attribute__((visibility("hidden")));
}

namespace am {
namespace {

constinit thread_local bool t_unwinding AM_TLS_IE = false;

// Frames of libunwind and of ammalloc above the program: at most a dozen.
constexpr int kSlack = 24;

}  // namespace

void stacktrace_init() {
  static constinit std::atomic<bool> done{false};
  if (!done.exchange(true, std::memory_order_acq_rel))
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

int stacktrace_depth() {
  int64_t d = option(kOptProfileStackDepth);
  return d < 1 ? 1 : d > kMaxStackDepth ? kMaxStackDepth : static_cast<int>(d);
}

bool stacktrace_is_internal(const void* pc) {
  auto a = reinterpret_cast<uintptr_t>(pc);
  return a >= reinterpret_cast<uintptr_t>(__start_am_entry) &&
         a < reinterpret_cast<uintptr_t>(__stop_am_entry);
}

AM_ENTRY_SECTION AM_NOINLINE int stacktrace_capture_raw(void** pcs, int max) {
  if (t_unwinding || max <= 0) return 0;
  t_unwinding = true;
  SamplerGuard no_sampling;
  int n = unw_backtrace(pcs, max);
  t_unwinding = false;
  return n < 0 ? 0 : n;
}

AM_ENTRY_SECTION AM_NOINLINE int stacktrace_capture(void** pcs, int max) {
  if (max > kMaxStackDepth) max = kMaxStackDepth;
  // Only as deep as asked: unw_backtrace's cost grows with every frame.
  void* raw[kMaxStackDepth + kSlack];
  int n = stacktrace_capture_raw(raw, max + kSlack);
  int i = 0;
  while (i < n && !stacktrace_is_internal(raw[i])) ++i;  // libunwind's frames
  if (i == n) i = 0;                                     // no entry frame: keep all
  while (i < n && stacktrace_is_internal(raw[i])) ++i;   // ammalloc's frames
  int depth = 0;
  for (; i < n && depth < max; ++i) pcs[depth++] = raw[i];
  return depth;
}

}  // namespace am

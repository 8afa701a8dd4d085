// The hook table and the observer dispatch (see hooks.h and observers.h).
#include "observe/hooks.h"

#include "base/attributes.h"
#include "heap/thread_cache.h"
#include "os/os.h"

namespace am {

constinit std::atomic<int> g_observed{0};

namespace {

enum SlotState : int { kEmpty = 0, kFilling, kActive, kRemoving };

struct Slot {
  std::atomic<int> state{kEmpty};
  std::atomic<int> in_flight{0};  // dispatches inside this slot's callbacks
  am_hooks hooks{};
};

struct InternalSlot {
  std::atomic<bool> ready{false};
  am_hooks hooks{};
};

constinit Slot g_slots[AM_HOOK_MAX];
constinit std::atomic<int> g_active_hooks{0};
constinit InternalSlot g_internal[kMaxInternalObservers];
constinit std::atomic<int> g_internal_claimed{0};
// Set while this thread runs hooks: its own allocations call none.
constinit thread_local bool t_in_hook AM_TLS_IE = false;

// Calls member Fn of one set (every member may be NULL).
template <auto Fn, typename... Args>
AM_ALWAYS_INLINE void call(const am_hooks& h, Args... args) {
  if (h.*Fn) (h.*Fn)(h.ctx, args...);
}

// Member Fn of every active program set, unless this thread is inside a hook.
template <auto Fn, typename... Args>
AM_ALWAYS_INLINE void run_hooks(Args... args) {
  if (t_in_hook || g_active_hooks.load(std::memory_order_relaxed) == 0) return;
  t_in_hook = true;
  // Per slot: count in, then test the state (seq_cst both, as the remover's
  // state change and count read), so that a removal waits only for the
  // dispatches inside that slot's callbacks. One shared count made removal
  // wait until no dispatch at all was in flight, which a busy program with a
  // slow hook in another slot may never reach.
  for (Slot& s : g_slots) {
    if (s.state.load(std::memory_order_relaxed) != kActive) continue;
    s.in_flight.fetch_add(1, std::memory_order_seq_cst);
    if (s.state.load(std::memory_order_seq_cst) == kActive) call<Fn>(s.hooks, args...);
    s.in_flight.fetch_sub(1, std::memory_order_release);
  }
  t_in_hook = false;
}

// Member Fn of every internal observer, always.
template <auto Fn, typename... Args>
AM_ALWAYS_INLINE void run_internal(Args... args) {
  int n = g_internal_claimed.load(std::memory_order_acquire);
  for (int i = 0; i < n && i < kMaxInternalObservers; ++i)
    if (g_internal[i].ready.load(std::memory_order_acquire)) call<Fn>(g_internal[i].hooks, args...);
}

void observers_up() {
  g_observed.fetch_add(1, std::memory_order_acq_rel);
  thread_cache_set_bypass(true);  // returns once every thread takes the slow path
}

void observers_down() {
  thread_cache_set_bypass(false);
  g_observed.fetch_sub(1, std::memory_order_acq_rel);
}

// Member Fn of every observer: before the work (kBegin) the program's hooks
// first, after it the internal observers first (hooks.h: internal ones sit
// nearest the real work). No lambdas: every frame between an entry point and
// an observer's stack capture must be in the entry section, in any build.
template <auto Fn, bool kBegin, typename... Args>
AM_ALWAYS_INLINE void dispatch(Args... args) {
  if (kBegin) run_hooks<Fn>(args...);
  run_internal<Fn>(args...);
  if (!kBegin) run_hooks<Fn>(args...);
}

}  // namespace

AM_ENTRY_SECTION void observe_alloc_begin(size_t size, am_api api) {
  dispatch<&am_hooks::pre_alloc, true>(size, api);
}
AM_ENTRY_SECTION void observe_alloc_end(void* p, size_t size, am_api api) {
  dispatch<&am_hooks::post_alloc, false>(p, size, api);
}
AM_ENTRY_SECTION void observe_free_begin(void* p, size_t usable, am_api api) {
  dispatch<&am_hooks::pre_free, true>(p, usable, api);
}
AM_ENTRY_SECTION void observe_free_end(void* p, size_t usable, am_api api) {
  dispatch<&am_hooks::post_free, false>(p, usable, api);
}

AM_ENTRY_SECTION void observe_realloc_in_place(void* p, size_t old_usable, size_t size) {
  observe_free_begin(p, old_usable, AM_API_REALLOC);
  observe_free_end(p, old_usable, AM_API_REALLOC);
  observe_alloc_begin(size, AM_API_REALLOC);
  observe_alloc_end(p, size, AM_API_REALLOC);
}

bool hooks_add_internal(const am_hooks& hooks) {
  int i = g_internal_claimed.fetch_add(1, std::memory_order_acq_rel);
  if (i >= kMaxInternalObservers) return false;
  g_internal[i].hooks = hooks;
  // Every thread on the slow path before the observer is published (as for
  // the first program hook).
  observers_up();
  g_internal[i].ready.store(true, std::memory_order_release);
  return true;
}

}  // namespace am

using namespace am;

extern "C" {

AM_EXPORT int am_hook_add(const am_hooks* hooks) {
  if (hooks == nullptr) return -1;
  for (int i = 0; i < AM_HOOK_MAX; ++i) {
    int expected = kEmpty;
    if (!g_slots[i].state.compare_exchange_strong(expected, kFilling, std::memory_order_acq_rel)) continue;
    g_slots[i].hooks = *hooks;
    // The first set moves every thread to the slow path before it is
    // published, so no thread sees half of its effect for long.
    if (g_active_hooks.fetch_add(1, std::memory_order_acq_rel) == 0) observers_up();
    g_slots[i].state.store(kActive, std::memory_order_seq_cst);
    return i + 1;
  }
  return -1;
}

AM_EXPORT int am_hook_remove(int handle) {
  if (handle < 1 || handle > AM_HOOK_MAX) return -1;
  Slot& s = g_slots[handle - 1];
  int expected = kActive;
  if (!s.state.compare_exchange_strong(expected, kRemoving, std::memory_order_seq_cst)) return -1;
  // Wait out dispatches that may have seen the slot active (not from inside a
  // hook: this thread's own dispatch would never end).
  if (!t_in_hook)
    while (s.in_flight.load(std::memory_order_seq_cst) != 0) os::yield_cpu();
  s.hooks = am_hooks{};
  s.state.store(kEmpty, std::memory_order_release);
  if (g_active_hooks.fetch_sub(1, std::memory_order_acq_rel) == 1) observers_down();
  return 0;
}

AM_EXPORT const char* am_api_name(am_api api) {
  static constexpr const char* kNames[AM_API_COUNT] = {
      "malloc",       "calloc",  "realloc",        "memalign",      "posix_memalign",
      "aligned_alloc", "valloc", "pvalloc",        "operator new",  "operator new[]",
      "free",         "free_sized", "operator delete", "operator delete[]",
  };
  return api >= 0 && api < AM_API_COUNT ? kNames[api] : "?";
}

}  // extern "C"

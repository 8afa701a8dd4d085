// Hardening: keys, fast-path rerouting and the hardened small paths (harden.h).
#include "front/harden.h"

#include "front/alloc_fast.h"
#include "front/alloc_slow.h"
#include "base/log.h"
#include "core/options.h"
#include "os/os.h"

namespace am {

namespace {
constexpr std::array<uint16_t, kClassIndexSize> list_offsets() {
  std::array<uint16_t, kClassIndexSize> a{};
  for (size_t i = 0; i < kClassIndexSize; ++i) a[i] = static_cast<uint16_t>(kSizeClasses.index[i] * kFreeListBytes);
  return a;
}
}  // namespace

static_assert(sizeof(FreeList) == kFreeListBytes);
constinit FastRoute g_fast_route{kSizeClasses.free_gate, list_offsets()};

namespace {

// A decoded link is sound if it ends the list or starts an object of the same
// class: a forged or scribbled link almost never does.
bool link_sound(void* next, uint32_t cl) {
  if (next == nullptr) return true;
  uint32_t next_cl;
  return small_object(next, &next_cl) && next_cl == cl;
}

}  // namespace

void harden_init() {
  if (option(kOptHarden) == 0) return;
  g_harden.link = static_cast<uintptr_t>(os::random_u64());
  g_harden.marker = static_cast<uintptr_t>(os::random_u64());
  g_harden.on = true;
  // Every size to class 0 (its lists are always empty: nothing is ever freed
  // into class 0), every gate closed.
  g_fast_route.list_offset.fill(0);
  for (FreeGate& g : g_fast_route.gate) g = FreeGate{0, 0};
}

void* harden_alloc_class(uint32_t cl, size_t size, am_api api) {
  ThreadCache& tc = tls_cache;
  FreeList& fl = tc_begin(tc)[cl];
  void* head = fl.head;
  if (AM_LIKELY(head != nullptr)) {
    void* next = link_next(head);
    if (AM_UNLIKELY(marker_word(head) != marker_of(head) || !link_sound(next, cl))) {
      tc_end(tc);
      fatal_corrupted_list(am_api_name(api), head);
    }
    fl.head = next;
    owner_store(fl.slack, fl.slack - 1);
    tc_end(tc);
    marker_word(head) = 0;
    return head;
  }
  tc_end(tc);
  return small_alloc_miss(cl, size, api);  // marks the object live
}

void harden_free(void* p, uint32_t cl, am_api api) {
  if (AM_UNLIKELY(marker_word(p) == marker_of(p))) fatal_double_free(am_api_name(api), p);
  marker_word(p) = marker_of(p);
  ThreadCache& tc = tls_cache;
  FreeList& fl = tc_begin(tc)[cl];
  if (AM_LIKELY(fl.length() < fl.max_length)) {
    link_set(p, fl.head);
    fl.head = p;
    owner_store(fl.slack, fl.slack + 1);
    tc_end(tc);
    return;
  }
  tc_end(tc);
  small_free_miss(p, cl, api);
}

void harden_check_live(void* p, am_api api) {
  uint32_t cl;
  if (harden_on() && small_object(p, &cl) && marker_word(p) == marker_of(p)) fatal_double_free(am_api_name(api), p);
}

}  // namespace am

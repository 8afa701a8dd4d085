// How a free small object is linked into a list, and how it is marked free.
//
// Owns: the link encoding every free list uses (thread-cache lists, chains in
// the transfer cache, a span's free list in the central cache) and the
// freed-object marker, with their two per-process keys. The tiers link and
// mark objects through these functions only; whether the keys are in force
// is hardening's decision (front/harden.h explains the design and sets the
// keys in init phase 1, before any object exists; they never change after).
//
// Off (the default), both keys are 0 and `on` is false: an encoded link is
// the plain pointer and marking is skipped, so these compile to plain loads
// and stores plus one predictable test on the central paths.
// Invariant: a free object is at least 16 bytes (word 0 is the link, word 1
// the marker while hardened).
#pragma once

#include <cstdint>

#include "base/attributes.h"

namespace am {

struct HardenKeys {
  uintptr_t link = 0;    // XORed into every free-list link; 0 when off
  uintptr_t marker = 0;  // word 1 of a free object is its address ^ marker
  bool on = false;
};
inline constinit HardenKeys g_harden;

AM_ALWAYS_INLINE bool harden_on() { return g_harden.on; }

// The free-list link of a free object (word 0), encoded.
AM_ALWAYS_INLINE void* link_next(void* obj) {
  return reinterpret_cast<void*>(*static_cast<uintptr_t*>(obj) ^ g_harden.link);
}
AM_ALWAYS_INLINE void link_set(void* obj, void* next) {
  *static_cast<uintptr_t*>(obj) = reinterpret_cast<uintptr_t>(next) ^ g_harden.link;
}

// Word 1 of a free object while hardened.
AM_ALWAYS_INLINE uintptr_t& marker_word(void* obj) { return static_cast<uintptr_t*>(obj)[1]; }
AM_ALWAYS_INLINE uintptr_t marker_of(void* obj) { return reinterpret_cast<uintptr_t>(obj) ^ g_harden.marker; }
// Marks an object free (central cache carving a span) / live (handed out).
AM_ALWAYS_INLINE void harden_mark_free(void* obj) {
  if (harden_on()) marker_word(obj) = marker_of(obj);
}
AM_ALWAYS_INLINE void harden_mark_live(void* obj) {
  if (harden_on() && obj != nullptr) marker_word(obj) = 0;
}

}  // namespace am

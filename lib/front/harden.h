// Hardening against heap misuse (AMMALLOC_HARDEN=1, or the meson option
// `harden` to make it the default). Off, it adds no instruction to the fast path.
//
// Owns: the fast path's route tables, the choice of the link and marker keys
// (core/free_link.h applies them), and the hardened small-object paths.
//
// What it does when on:
//  1. Encoded links. The first word of every free small object - the link of a
//     thread-cache list, of a chain handed through the transfer cache, of a
//     span's free list - is stored XORed with a per-process random key. A
//     use-after-free write of an address into a freed object therefore decodes
//     to garbage, not to the address, and the garbage is caught by (3).
//  2. Double-free marker. Word 1 of every free small object holds
//     address ^ marker_key (a second random key). A free of an object that
//     carries its marker is a double free: `ammalloc: free(): double free of
//     0x...`. An object loses its marker when it is handed out. A live object
//     whose word 1 happens to equal its marker would be a false report: with a
//     random 64-bit key, probability 2^-64 per free.
//  3. Checked pops. Before an object leaves a list, its marker must be intact
//     and its decoded link must be null or the start of an object of the same
//     class (the pagemap's test): otherwise `ammalloc: malloc(): corrupted free
//     list at 0x...` (a use-after-free write, or memory corruption).
//  4. Invalid and interior pointers are rejected as without hardening (the
//     pagemap's object-start test, alloc_fast.h).
//
// How it stays free when off. The malloc and free fast paths read their size
// class index and their object-start test from g_fast_route, a writable copy of
// the size-class tables. Off, the copies are exact and the fast paths run as
// always (with the key 0, an encoded link is the plain pointer). On, init
// points every size at class 0, whose list is always empty, and closes every
// class's gate (limit 0): every small malloc reaches alloc_miss with class 0
// routed, every small free fails the gate into free_miss, and both come here.
// The cost when on is a call and a pagemap lookup per operation (README,
// "Hardening", has the measured figures).
//
// Set once, in init phase 1, before any object exists; never turned off.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ammalloc/ammalloc.h"
#include "base/attributes.h"
#include "core/free_link.h"
#include "core/size_class.h"

namespace am {

// The gates come first: free then addresses them from the table's base with no
// displacement add. The size index holds each class's byte offset in the
// thread's array of free lists (class * kFreeListBytes), so that malloc adds it
// to the array's address without a shift.
inline constexpr size_t kFreeListBytes = 16;  // sizeof(FreeList), thread_cache.h
struct FastRoute {
  std::array<FreeGate, kNumClasses> gate;
  std::array<uint16_t, kClassIndexSize> list_offset;
};
extern constinit FastRoute g_fast_route;

// The class the fast path's route gives a small size (0 when hardened).
AM_ALWAYS_INLINE uint32_t route_class(size_t size) {
  return g_fast_route.list_offset[class_index(size)] / kFreeListBytes;
}

// Init phase 1: reads AMMALLOC_HARDEN (via options) and, if on, draws the keys
// and reroutes the fast path.
void harden_init();

// The hardened paths (harden.cc), reached from the fast path's misses
// (alloc_slow.cc). alloc_class: a small request of a known class; free: p is
// the start of an object of class cl.
void* harden_alloc_class(uint32_t cl, size_t size, am_api api);
void harden_free(void* p, uint32_t cl, am_api api);
// realloc: aborts if p (a small object) is already free.
void harden_check_live(void* p, am_api api);

}  // namespace am

// The hook table: every observer of allocations and frees, the program's malloc
// hooks (am_hook_add, ammalloc.h) and ammalloc's own internal observers (the
// heap checker registers itself here; this file knows nothing of it).
//
// Owns: AM_HOOK_MAX program slots and kMaxInternalObservers internal ones (each
// a copy of an am_hooks), the dispatch behind observers.h (defined in
// hooks.cc), the per-thread guard that keeps allocations made inside a hook
// from calling hooks, and the bypass switch (observers.h explains why every
// observed operation reaches a slow path).
//
// Order of one operation: the program's hooks run outside, the internal
// observers inside (nearest the real work): alloc_begin runs hooks then
// internal pre_alloc; alloc_end internal post_alloc then hooks; free_begin
// hooks then internal pre_free; free_end internal post_free then hooks.
// Internal observers see every operation, including those a hook makes (the
// guard is for the program's hooks only), and are never removed.
//
// Locks: none. A program slot is claimed with a CAS, filled, then published;
// removal unpublishes it and waits until no dispatch is inside that slot (a
// Dekker handshake on the slot's in-flight count, seq_cst on both sides), so a
// removed set's callbacks have returned when am_hook_remove returns. A count
// per slot: a busy program with a slow hook elsewhere does not hold up the
// removal of another set. An internal slot is claimed by a counter and published by its own
// flag (release), read with acquire by the dispatch.
#pragma once

#include "ammalloc/ammalloc.h"
#include "observe/observers.h"

namespace am {

inline constexpr int kMaxInternalObservers = 2;

// Registers an internal observer for the rest of the process and moves every
// thread onto the slow path. Its callbacks must be AM_ENTRY_SECTION (a stack
// captured inside one then starts at the program's frame). False if the
// internal slots are full.
bool hooks_add_internal(const am_hooks& hooks);

}  // namespace am

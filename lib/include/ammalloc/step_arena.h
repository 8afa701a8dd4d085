// StepArena: a per-step bump allocator for an engine's temporaries
// (activations), over chunks from the am_* heap.
//
// Activations of one forward step die together at its end, so they need no
// individual free: allocate() bumps a cursor through a chain of chunks
// (chunk_bytes each, 2 MiB by default: one transparent huge page), and
// reset() moves the cursor back to the first chunk in O(1). Chunks are kept
// across steps, so a steady workload reaches a fixed set of chunks after its
// first step and never touches the heap again. A request larger than
// chunk_bytes / 4 would waste up to a quarter of a chunk at its end; it goes
// straight to am_memalign instead and is freed by the next reset() (the one
// O(k) part, k = oversize requests of the step).
//
// Every pointer is aligned to `align` (default 64; a power of two). max_bytes
// (0 = none) bounds chunks + oversize blocks held; beyond it, and when the heap
// fails, allocate() throws AllocationError (catchable as std::bad_alloc).
//
// Not thread-safe: one arena per executing thread (a step runs on one
// thread; give each worker of a pool its own arena).
#ifndef AMMALLOC_STEP_ARENA_H
#define AMMALLOC_STEP_ARENA_H

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ammalloc/allocator.h"

namespace ammalloc {

struct StepArenaStats {
  std::size_t chunk_bytes = 0;
  std::size_t chunks = 0;            // held (reused every step)
  std::size_t reserved_bytes = 0;    // chunks x chunk_bytes + live oversize blocks
  std::size_t step_bytes = 0;        // bytes handed out in the current step (with alignment padding)
  std::size_t peak_step_bytes = 0;   // the largest step so far
  std::size_t oversize_bytes = 0;    // live oversize blocks
  std::size_t max_bytes = 0;
  std::uint64_t steps = 0;           // reset() calls
  std::uint64_t allocations = 0;     // bump allocations
  std::uint64_t oversize_allocations = 0;
  std::uint64_t chunk_allocations = 0;  // chunks ever taken from the heap
};

class AM_CXX_API StepArena {
 public:
  static constexpr std::size_t kDefaultChunk = std::size_t{2} << 20;

  explicit StepArena(std::size_t chunk_bytes = kDefaultChunk, std::size_t max_bytes = 0);
  ~StepArena();
  StepArena(const StepArena&) = delete;
  StepArena& operator=(const StepArena&) = delete;

  // n bytes aligned to align (n == 0 is taken as 1, so pointers are distinct).
  void* allocate(std::size_t n, std::size_t align = kAlignment);
  template <typename T>
  T* allocate_array(std::size_t count) {
    return static_cast<T*>(allocate(count * sizeof(T), alignof(T) > kAlignment ? alignof(T) : kAlignment));
  }
  // Ends the step: every pointer handed out since the last reset() dies.
  void reset() noexcept;
  // Frees every chunk (and oversize block): the arena holds nothing.
  void release() noexcept;

  StepArenaStats stats() const noexcept;

 private:
  void* allocate_oversize(std::size_t n, std::size_t align);
  bool next_chunk();
  void free_oversize() noexcept;

  std::size_t chunk_bytes_;
  std::size_t max_bytes_;
  std::vector<std::byte*> chunks_;
  std::vector<void*> oversize_;
  std::size_t next_ = 0;  // index into chunks_ of the chunk the bump moves to when this one is full
  std::uintptr_t cursor_ = 0;
  std::uintptr_t end_ = 0;
  std::size_t step_bytes_ = 0;
  std::size_t peak_step_bytes_ = 0;
  std::size_t oversize_bytes_ = 0;
  std::uint64_t steps_ = 0;
  std::uint64_t allocations_ = 0;
  std::uint64_t oversize_allocations_ = 0;
  std::uint64_t chunk_allocations_ = 0;
};

}  // namespace ammalloc

#endif  // AMMALLOC_STEP_ARENA_H

// ExecutorMemory: a model executor's memory, by category, on the am_* heap.
//
// Three categories, each with its own figures and its own maximum (0 = none):
//   weights     named, long-lived blocks (add_weight / weight / remove_weight)
//   temporaries blocks that outlive a step (allocate_temp / free_temp)
//   arena       the per-step StepArena (step_alloc / end_step): activations
//               that die together when a step ends, reset in O(1)
// Sizes are counted as asked (not rounded to ammalloc's size classes), so a
// maximum bounds exactly what the engine requested. Every block is 64-byte
// aligned. A request past a maximum, or that the heap refuses, throws
// AllocationError (a std::bad_alloc) and changes nothing.
//
// clear_all() frees every weight, every temporary and the arena's chunks
// (the seed's "clear all"); pointers from before it are dead.
//
// Threads: weights and temporaries are guarded by one mutex (any thread).
// The arena is the executing thread's: step_alloc/end_step must not be called
// from two threads at once (give each worker its own ExecutorMemory or
// StepArena); clear_all() and stats() (its arena part) must not race with
// them either.
#ifndef AMMALLOC_EXECUTOR_MEMORY_H
#define AMMALLOC_EXECUTOR_MEMORY_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ammalloc/allocator.h"
#include "ammalloc/step_arena.h"

namespace ammalloc {

struct ExecutorMemoryConfig {
  std::size_t max_weight_bytes = 0;
  std::size_t max_temp_bytes = 0;
  std::size_t max_arena_bytes = 0;
  std::size_t arena_chunk_bytes = StepArena::kDefaultChunk;
};

struct CategoryStats {
  std::size_t bytes = 0;       // live
  std::size_t peak_bytes = 0;  // since construction or reset_peaks()
  std::size_t max_bytes = 0;   // the category's maximum (0 = none)
  std::size_t count = 0;       // live blocks
  std::uint64_t rejected = 0;  // requests refused (maximum or heap)
};

struct ExecutorMemoryStats {
  CategoryStats weights;
  CategoryStats temporaries;
  StepArenaStats arena;
};

class AM_CXX_API ExecutorMemory {
 public:
  explicit ExecutorMemory(const ExecutorMemoryConfig& config = {});
  ~ExecutorMemory();
  ExecutorMemory(const ExecutorMemory&) = delete;
  ExecutorMemory& operator=(const ExecutorMemory&) = delete;

  // A new block of `bytes` under `name` (uninitialised); replaces and frees a
  // weight of the same name (the old one's bytes count until the new one is
  // in, so the maximum must hold both for a moment).
  std::byte* add_weight(std::string_view name, std::size_t bytes);
  // The seed's copy-in: a weight holding a copy of `data`.
  float* add_weight(std::string_view name, std::span<const float> data);
  // nullptr if absent. *bytes (if not null) gets its size.
  std::byte* weight(std::string_view name, std::size_t* bytes = nullptr) const;
  bool remove_weight(std::string_view name);

  void* allocate_temp(std::size_t bytes);
  // nullptr is a no-op; a pointer not from allocate_temp (or freed twice) is a
  // usage error: std::invalid_argument.
  void free_temp(void* p);

  // The per-step arena (see StepArena).
  void* step_alloc(std::size_t bytes, std::size_t align = kAlignment) { return arena_.allocate(bytes, align); }
  void end_step() noexcept { arena_.reset(); }
  StepArena& arena() noexcept { return arena_; }

  void clear_all();
  void reset_peaks();
  ExecutorMemoryStats stats() const;

 private:
  struct Block {
    void* ptr;
    std::size_t bytes;
  };
  struct Category {
    std::size_t bytes = 0;
    std::size_t peak = 0;
    std::size_t max = 0;
    std::uint64_t rejected = 0;
  };
  // Allocates `bytes` against c's maximum (mu_ held); throws AllocationError.
  void* take(Category& c, std::size_t bytes, const char* what);
  static void give(Category& c, const Block& b) noexcept;
  static CategoryStats snapshot(const Category& c, std::size_t count) noexcept;

  // Lets weight(string_view) look up without building a std::string.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  mutable std::mutex mu_;  // weights_, temps_, the two categories
  std::unordered_map<std::string, Block, NameHash, std::equal_to<>> weights_;
  std::unordered_map<void*, std::size_t> temps_;
  Category weight_cat_, temp_cat_;
  StepArena arena_;
};

}  // namespace ammalloc

#endif  // AMMALLOC_EXECUTOR_MEMORY_H

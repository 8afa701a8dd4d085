// ExecutorMemory (lib/include/ammalloc/executor_memory.h): weights and
// temporaries accounted apart, plus the per-step arena.
//
// Owns: every weight and temporary block (am_memalign(64)), the StepArena.
// Invariants (under mu_): a category's bytes is the sum of its live blocks'
// requested sizes and never exceeds its max (when max != 0); peak >= bytes.
// Locks: mu_ for weights and temporaries; the heap is called under it (no
// callback of ours can re-enter: ExecutorMemory does not subscribe to
// MemoryMonitor). The arena has no lock (one thread, see the header).
#include "ammalloc/executor_memory.h"

#include <cstring>
#include <stdexcept>

#include "ammalloc/ammalloc.h"

namespace ammalloc {

ExecutorMemory::ExecutorMemory(const ExecutorMemoryConfig& config)
    : arena_(config.arena_chunk_bytes, config.max_arena_bytes) {
  weight_cat_.max = config.max_weight_bytes;
  temp_cat_.max = config.max_temp_bytes;
}

ExecutorMemory::~ExecutorMemory() { clear_all(); }

void* ExecutorMemory::take(Category& c, std::size_t bytes, const char* what) {
  if (c.max != 0 && (bytes > c.max || c.bytes > c.max - bytes)) {
    ++c.rejected;
    throw AllocationError(bytes, kAlignment, what);
  }
  void* p = ::am_memalign(kAlignment, bytes == 0 ? 1 : bytes);
  if (p == nullptr) {
    ++c.rejected;
    throw AllocationError(bytes, kAlignment, what);
  }
  c.bytes += bytes;
  if (c.bytes > c.peak) c.peak = c.bytes;
  return p;
}

void ExecutorMemory::give(Category& c, const Block& b) noexcept {
  ::am_free(b.ptr);
  c.bytes -= b.bytes;
}

std::byte* ExecutorMemory::add_weight(std::string_view name, std::size_t bytes) {
  std::string key(name);
  std::lock_guard<std::mutex> g(mu_);
  auto it = weights_.find(name);
  if (it == weights_.end()) it = weights_.emplace(std::move(key), Block{nullptr, 0}).first;
  // The map entry exists before the block, so that storing the block cannot fail.
  void* p = nullptr;
  try {
    p = take(weight_cat_, bytes, "ExecutorMemory(weights)");
  } catch (...) {
    if (it->second.ptr == nullptr) weights_.erase(it);
    throw;
  }
  if (it->second.ptr != nullptr) give(weight_cat_, it->second);
  it->second = Block{p, bytes};
  return static_cast<std::byte*>(p);
}

float* ExecutorMemory::add_weight(std::string_view name, std::span<const float> data) {
  std::byte* p = add_weight(name, data.size_bytes());
  if (!data.empty()) std::memcpy(p, data.data(), data.size_bytes());
  return reinterpret_cast<float*>(p);
}

std::byte* ExecutorMemory::weight(std::string_view name, std::size_t* bytes) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = weights_.find(name);
  if (it == weights_.end()) return nullptr;
  if (bytes != nullptr) *bytes = it->second.bytes;
  return static_cast<std::byte*>(it->second.ptr);
}

bool ExecutorMemory::remove_weight(std::string_view name) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = weights_.find(name);
  if (it == weights_.end()) return false;
  give(weight_cat_, it->second);
  weights_.erase(it);
  return true;
}

void* ExecutorMemory::allocate_temp(std::size_t bytes) {
  std::lock_guard<std::mutex> g(mu_);
  temps_.reserve(temps_.size() + 1);  // before the block: inserting it then cannot fail
  void* p = take(temp_cat_, bytes, "ExecutorMemory(temporaries)");
  temps_.emplace(p, bytes);
  return p;
}

void ExecutorMemory::free_temp(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> g(mu_);
  auto it = temps_.find(p);
  if (it == temps_.end()) throw std::invalid_argument("ExecutorMemory::free_temp: not a live temporary");
  give(temp_cat_, Block{it->first, it->second});
  temps_.erase(it);
}

void ExecutorMemory::clear_all() {
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [name, b] : weights_) give(weight_cat_, b);
    weights_.clear();
    for (auto& [p, n] : temps_) give(temp_cat_, Block{p, n});
    temps_.clear();
  }
  arena_.release();
}

void ExecutorMemory::reset_peaks() {
  std::lock_guard<std::mutex> g(mu_);
  weight_cat_.peak = weight_cat_.bytes;
  temp_cat_.peak = temp_cat_.bytes;
}

CategoryStats ExecutorMemory::snapshot(const Category& c, std::size_t count) noexcept {
  CategoryStats s;
  s.bytes = c.bytes;
  s.peak_bytes = c.peak;
  s.max_bytes = c.max;
  s.count = count;
  s.rejected = c.rejected;
  return s;
}

ExecutorMemoryStats ExecutorMemory::stats() const {
  ExecutorMemoryStats s;
  {
    std::lock_guard<std::mutex> g(mu_);
    s.weights = snapshot(weight_cat_, weights_.size());
    s.temporaries = snapshot(temp_cat_, temps_.size());
  }
  s.arena = arena_.stats();
  return s;
}

}  // namespace ammalloc

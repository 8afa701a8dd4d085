// StepArena (lib/include/ammalloc/step_arena.h): bump allocation over reused
// chunks, O(1) reset.
//
// Owns: chunks_ (from am_memalign, freed only by release() or destruction)
// and the oversize blocks of the current step. Invariants: [cursor_, end_) is
// the free tail of chunks_[next_ - 1] (empty when next_ == 0); chunks
// next_.. are untouched this step. No locks: one thread per arena.
#include "ammalloc/step_arena.h"

#include <stdexcept>

#include "ammalloc/ammalloc.h"

namespace ammalloc {

namespace {
// A chunk is aligned to a huge page when it is one (2 MiB) or larger, so
// ammalloc can back it with a transparent huge page; smaller ones to a page.
constexpr std::size_t kHugePage = std::size_t{2} << 20;
constexpr std::size_t kPage = 4096;
}  // namespace

StepArena::StepArena(std::size_t chunk_bytes, std::size_t max_bytes)
    : chunk_bytes_(chunk_bytes), max_bytes_(max_bytes) {
  if (chunk_bytes < kPage) throw std::invalid_argument("StepArena: chunk_bytes must be >= 4096");
}

StepArena::~StepArena() { release(); }

bool StepArena::next_chunk() {
  if (next_ == chunks_.size()) {
    const std::size_t reserved = chunks_.size() * chunk_bytes_ + oversize_bytes_;
    if (max_bytes_ != 0 && reserved + chunk_bytes_ > max_bytes_) return false;
    chunks_.reserve(chunks_.size() + 1);  // before the chunk exists: nothing to undo if it throws
    void* c = ::am_memalign(chunk_bytes_ >= kHugePage ? kHugePage : kPage, chunk_bytes_);
    if (c == nullptr) return false;
    chunks_.push_back(static_cast<std::byte*>(c));
    ++chunk_allocations_;
  }
  cursor_ = reinterpret_cast<std::uintptr_t>(chunks_[next_]);
  end_ = cursor_ + chunk_bytes_;
  ++next_;
  return true;
}

void* StepArena::allocate_oversize(std::size_t n, std::size_t align) {
  if (max_bytes_ != 0 && chunks_.size() * chunk_bytes_ + oversize_bytes_ + n > max_bytes_)
    throw AllocationError(n, align, "StepArena");
  oversize_.reserve(oversize_.size() + 1);
  void* p = ::am_memalign(align, n);
  if (p == nullptr) throw AllocationError(n, align, "StepArena");
  oversize_.push_back(p);
  oversize_bytes_ += n;
  step_bytes_ += n;
  ++oversize_allocations_;
  return p;
}

void* StepArena::allocate(std::size_t n, std::size_t align) {
  if (align == 0 || (align & (align - 1)) != 0) throw std::invalid_argument("StepArena: align must be a power of two");
  if (n == 0) n = 1;
  // A quarter chunk: the most a request may leave unused at a chunk's end.
  if (n > chunk_bytes_ / 4 || align > kPage) return allocate_oversize(n, align);
  for (;;) {
    const std::uintptr_t p = (cursor_ + align - 1) & ~static_cast<std::uintptr_t>(align - 1);
    if (cursor_ != 0 && p + n <= end_) {
      step_bytes_ += p + n - cursor_;
      cursor_ = p + n;
      ++allocations_;
      return reinterpret_cast<void*>(p);
    }
    if (!next_chunk()) throw AllocationError(n, align, "StepArena");
  }
}

void StepArena::free_oversize() noexcept {
  for (void* p : oversize_) ::am_free(p);
  oversize_.clear();
  oversize_bytes_ = 0;
}

void StepArena::reset() noexcept {
  free_oversize();
  if (step_bytes_ > peak_step_bytes_) peak_step_bytes_ = step_bytes_;
  step_bytes_ = 0;
  ++steps_;
  next_ = 0;
  cursor_ = 0;
  end_ = 0;
}

void StepArena::release() noexcept {
  free_oversize();
  if (step_bytes_ > peak_step_bytes_) peak_step_bytes_ = step_bytes_;
  step_bytes_ = 0;
  next_ = 0;
  cursor_ = 0;
  end_ = 0;
  for (std::byte* c : chunks_) ::am_free(c);
  chunks_.clear();
}

StepArenaStats StepArena::stats() const noexcept {
  StepArenaStats s;
  s.chunk_bytes = chunk_bytes_;
  s.chunks = chunks_.size();
  s.reserved_bytes = chunks_.size() * chunk_bytes_ + oversize_bytes_;
  s.step_bytes = step_bytes_;
  s.peak_step_bytes = peak_step_bytes_ > step_bytes_ ? peak_step_bytes_ : step_bytes_;
  s.oversize_bytes = oversize_bytes_;
  s.max_bytes = max_bytes_;
  s.steps = steps_;
  s.allocations = allocations_;
  s.oversize_allocations = oversize_allocations_;
  s.chunk_allocations = chunk_allocations_;
  return s;
}

}  // namespace ammalloc

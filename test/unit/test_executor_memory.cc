// Tests of ExecutorMemory and StepArena (lib/include/ammalloc/
// executor_memory.h, step_arena.h): weights and temporaries accounted apart
// with their own maxima, clear_all, and the per-step arena (alignment, O(1)
// reset that reuses the same memory, no growth over 10,000 steps, oversize
// requests through the heap, its own maximum).
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "ammalloc/executor_memory.h"
#include "ammalloc/memory_monitor.h"

using namespace ammalloc;

namespace {
constexpr std::size_t kMiB = std::size_t{1} << 20;
bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }
}  // namespace

TEST_CASE("weights: named, accounted, with their own maximum", "[executor]") {
  ExecutorMemoryConfig cfg;
  cfg.max_weight_bytes = 10 * kMiB;
  cfg.max_temp_bytes = 1 * kMiB;
  ExecutorMemory em(cfg);
  std::byte* a = em.add_weight("layer0.w", 4 * kMiB);
  REQUIRE(a != nullptr);
  CHECK(aligned(a, 64));
  std::memset(a, 1, 4 * kMiB);
  const std::vector<float> bias{1.f, 2.f, 3.f};
  float* b = em.add_weight("layer0.b", bias);
  CHECK(std::vector<float>(b, b + 3) == bias);
  std::size_t n = 0;
  CHECK(em.weight("layer0.w", &n) == a);
  CHECK(n == 4 * kMiB);
  CHECK(em.weight("nope") == nullptr);

  ExecutorMemoryStats st = em.stats();
  CHECK(st.weights.bytes == 4 * kMiB + 12);
  CHECK(st.weights.count == 2);
  CHECK(st.temporaries.bytes == 0);  // apart

  // Past the maximum: refused, nothing changes.
  CHECK_THROWS_AS(em.add_weight("layer1.w", 7 * kMiB), AllocationError);
  st = em.stats();
  CHECK(st.weights.bytes == 4 * kMiB + 12);
  CHECK(st.weights.rejected == 1);
  CHECK(em.weight("layer1.w") == nullptr);
  // Replacing holds both for a moment: 4 + 12 B + 5 MiB fits under 10 MiB.
  std::byte* a2 = em.add_weight("layer0.w", 5 * kMiB);
  CHECK(em.weight("layer0.w") == a2);
  st = em.stats();
  CHECK(st.weights.bytes == 5 * kMiB + 12);
  CHECK(st.weights.peak_bytes == 9 * kMiB + 12);
  CHECK(em.remove_weight("layer0.b"));
  CHECK_FALSE(em.remove_weight("layer0.b"));
  CHECK(em.stats().weights.bytes == 5 * kMiB);
  em.reset_peaks();
  CHECK(em.stats().weights.peak_bytes == 5 * kMiB);
}

TEST_CASE("temporaries: their own maximum; clear_all frees every category", "[executor]") {
  ExecutorMemoryConfig cfg;
  cfg.max_temp_bytes = 3 * kMiB;
  ExecutorMemory em(cfg);
  am_reset();
  const std::size_t base = memory_monitor().allocated();
  void* t1 = em.allocate_temp(kMiB);
  void* t2 = em.allocate_temp(kMiB);
  CHECK(aligned(t1, 64));
  CHECK_THROWS_AS(em.allocate_temp(2 * kMiB), AllocationError);
  ExecutorMemoryStats st = em.stats();
  CHECK(st.temporaries.bytes == 2 * kMiB);
  CHECK(st.temporaries.count == 2);
  CHECK(st.temporaries.rejected == 1);
  em.free_temp(t1);
  CHECK(em.stats().temporaries.bytes == kMiB);
  CHECK_THROWS_AS(em.free_temp(t1), std::invalid_argument);
  em.free_temp(nullptr);
  CHECK(em.stats().temporaries.peak_bytes == 2 * kMiB);

  em.add_weight("w", 2 * kMiB);
  em.step_alloc(1000);
  CHECK(memory_monitor().allocated() >= base + 3 * kMiB);
  (void)t2;
  em.clear_all();  // frees t2, the weight and the arena's chunk
  st = em.stats();
  CHECK(st.weights.bytes == 0);
  CHECK(st.weights.count == 0);
  CHECK(st.temporaries.bytes == 0);
  CHECK(st.temporaries.count == 0);
  CHECK(st.arena.chunks == 0);
  CHECK(memory_monitor().allocated() <= base);
}

TEST_CASE("step arena: aligned bump allocation, O(1) reset reuses the same memory", "[executor][arena]") {
  StepArena arena(64 * 1024);
  void* first = arena.allocate(100);
  void* second = arena.allocate(10, 256);
  CHECK(aligned(first, 64));
  CHECK(aligned(second, 256));
  CHECK(static_cast<std::byte*>(second) >= static_cast<std::byte*>(first) + 100);
  float* f = arena.allocate_array<float>(1000);
  CHECK(aligned(f, 64));
  CHECK(arena.stats().chunks == 1);
  // Past one chunk: the next one.
  for (int i = 0; i < 20; ++i) arena.allocate(4000);
  CHECK(arena.stats().chunks == 2);
  // Oversize (> a quarter chunk): straight from the heap, freed at reset.
  void* big = arena.allocate(32 * 1024);
  CHECK(aligned(big, 64));
  CHECK(arena.stats().oversize_bytes == 32 * 1024);
  CHECK_THROWS_AS(arena.allocate(8, 3), std::invalid_argument);
  arena.reset();
  StepArenaStats st = arena.stats();
  CHECK(st.oversize_bytes == 0);
  CHECK(st.step_bytes == 0);
  CHECK(st.peak_step_bytes > 32 * 1024 + 80000);
  CHECK(st.steps == 1);
  CHECK(arena.allocate(100) == first);  // the same memory again
}

TEST_CASE("step arena: 10,000 steps of an activation pattern, no growth", "[executor][arena]") {
  ExecutorMemory em;
  am_reset();
  // A transformer-like step: per layer a few activations of varying size,
  // one oversize attention buffer every 8th step.
  auto step = [&](int s) {
    for (int layer = 0; layer < 8; ++layer) {
      float* x = static_cast<float*>(em.step_alloc(4096 * sizeof(float)));
      float* h = static_cast<float*>(em.step_alloc((1024 + (s % 7) * 128) * sizeof(float)));
      x[0] = static_cast<float>(s);
      h[0] = x[0];
    }
    if (s % 8 == 0) std::memset(em.step_alloc(kMiB), 0, kMiB);
    em.end_step();
  };
  step(0);
  const StepArenaStats after_first = em.stats().arena;
  const std::size_t used_first = memory_monitor().used();
  const std::size_t allocated_first = memory_monitor().allocated();
  std::set<void*> firsts;
  for (int s = 1; s <= 10000; ++s) {
    firsts.insert(em.step_alloc(64));
    em.end_step();
    step(s);
  }
  const StepArenaStats st = em.stats().arena;
  CHECK(firsts.size() == 1);  // every step starts at the same address
  CHECK(st.chunks == after_first.chunks);
  CHECK(st.chunk_allocations == after_first.chunk_allocations);
  CHECK(st.steps == 1 + 2 * 10000);
  CHECK(st.oversize_allocations == 1 + 10000 / 8);
  CHECK(memory_monitor().allocated() == allocated_first);
  CHECK(memory_monitor().used() <= used_first + kMiB);  // the oversize block's span is reused, not grown
}

TEST_CASE("step arena: its maximum", "[executor][arena]") {
  ExecutorMemoryConfig cfg;
  cfg.arena_chunk_bytes = 64 * 1024;
  cfg.max_arena_bytes = 128 * 1024;
  ExecutorMemory em(cfg);
  for (int i = 0; i < 8; ++i) em.step_alloc(16000);  // two chunks
  CHECK_THROWS_AS(em.step_alloc(16000), AllocationError);
  CHECK_THROWS_AS(em.step_alloc(64 * 1024), AllocationError);  // oversize counts too
  em.end_step();
  CHECK(em.step_alloc(16000) != nullptr);
}

// dlopen_ext — a tiny extension-like shared object for python_dlopen.sh: what a
// Python extension module built against the C++ Allocator API looks like. It
// links libammalloc_cxx + libammalloc_core (meson: ammalloc_cxx_dep) and is
// loaded late, with ctypes.CDLL, into a Python process that already runs
// threads, so both libraries arrive through dlopen, not at start-up.
//
// am_dlopen_ext_run(rounds, seed) is called from several Python threads at once
// (ctypes releases the GIL around the call): each round allocates a few blocks
// of different sizes through ammalloc::ammalloc_allocator() (DataPtr and
// raw_allocate), fills each with a pattern of its own, checks every pattern
// before freeing, and returns 0, or a number saying what went wrong.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ammalloc/allocator.h"

namespace {

constexpr int kBlocks = 8;

unsigned char pattern(std::uint32_t seed, int round, int block, std::size_t i) {
  return static_cast<unsigned char>(seed * 131u + static_cast<unsigned>(round) * 31u +
                                    static_cast<unsigned>(block) * 7u + i);
}

void fill(void* p, std::size_t n, std::uint32_t seed, int round, int block) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; i++) b[i] = pattern(seed, round, block, i);
}

bool intact(const void* p, std::size_t n, std::uint32_t seed, int round, int block) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; i++)
    if (b[i] != pattern(seed, round, block, i)) return false;
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int am_dlopen_ext_run(int rounds, unsigned seed) {
  try {
    ammalloc::Allocator& a = ammalloc::ammalloc_allocator();
    if (std::strcmp(a.name(), "AmmallocAllocator") != 0) return 1;
    for (int r = 0; r < rounds; r++) {
      ammalloc::DataPtr owned[kBlocks];
      void* raw[kBlocks];
      std::size_t sizes[kBlocks];
      for (int b = 0; b < kBlocks; b++) {
        // 16 B .. ~300 KiB: small classes and, now and then, a large block.
        sizes[b] = (b == kBlocks - 1 && r % 16 == 0) ? 300000 : 16 + ((seed + r * 13 + b * 97) % 4000);
        owned[b] = a.allocate(sizes[b]);
        if (!owned[b] || owned[b].get() == nullptr) return 2;
        if (reinterpret_cast<std::uintptr_t>(owned[b].get()) % ammalloc::kAlignment != 0) return 3;
        fill(owned[b].get(), sizes[b], seed, r, b);
        raw[b] = a.raw_allocate(sizes[b] / 2 + 1);
        if (raw[b] == nullptr) return 4;
        fill(raw[b], sizes[b] / 2 + 1, seed + 1, r, b);
      }
      for (int b = 0; b < kBlocks; b++) {
        if (!intact(owned[b].get(), sizes[b], seed, r, b)) return 5;
        if (!intact(raw[b], sizes[b] / 2 + 1, seed + 1, r, b)) return 6;
        a.raw_deallocate(raw[b]);
        owned[b].clear();
      }
    }
    if (a.stats().allocation_count < static_cast<std::size_t>(rounds)) return 7;
  } catch (const ammalloc::AllocationError&) {
    return 8;
  } catch (...) {
    return 9;
  }
  return 0;
}

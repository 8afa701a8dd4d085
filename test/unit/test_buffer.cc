// Tests of Buffer<T> / FloatArray and RawPtr (lib/include/ammalloc/buffer.h):
// RAII through any Allocator, 64-byte alignment even from an allocator that
// does not align, zero fill, move-only ownership, the unique_ptr RAIIWrapper.
#include <catch2/catch.hpp>
#include <cstdint>
#include <type_traits>

#include "ammalloc/ammalloc.h"
#include "ammalloc/buffer.h"

using namespace ammalloc;

namespace {

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// An allocator whose blocks are 16 bytes past a 64-byte boundary, and that
// counts what it has out.
class SkewedAllocator final : public Allocator {
 public:
  static inline int live = 0;
  DataPtr allocate(std::size_t n) override {
    auto* base = static_cast<std::byte*>(am_memalign(64, n + 16));
    ++live;
    return DataPtr(base + 16, base, &del, DeviceType::CPU);
  }
  const char* name() const noexcept override { return "Skewed"; }

 private:
  static void del(void* ctx) {
    --live;
    am_free(ctx);
  }
};

}  // namespace

static_assert(!std::is_copy_constructible_v<FloatArray> && !std::is_copy_assignable_v<FloatArray>);
static_assert(std::is_nothrow_move_constructible_v<FloatArray> && std::is_nothrow_move_assignable_v<FloatArray>);

TEST_CASE("FloatArray: zeroed, aligned, freed through its allocator", "[buffer]") {
  AmmallocAllocator& am = ammalloc_allocator();
  am.reset();
  {
    FloatArray a(1000);
    REQUIRE(a.size() == 1000);
    CHECK(a.size_bytes() == 4000);
    CHECK(aligned64(a.data()));
    bool zero = true;
    for (float x : a) zero = zero && x == 0.0f;
    CHECK(zero);
    a[999] = 5.0f;
    CHECK(a.span().back() == 5.0f);
    CHECK(am.stats().allocated_bytes >= 4000);
  }
  CHECK(am.stats().allocated_bytes == 0);
  CHECK(am.stats().free_count == 1);

  FloatArray c(10, cpu_allocator());
  CHECK(aligned64(c.data()));
  CHECK(c.data_ptr().get_deleter() == cpu_allocator().raw_deleter());
  FloatArray empty;
  CHECK(empty.empty());
  CHECK(empty.data() == nullptr);
  FloatArray zero_len(0);
  CHECK(zero_len.data() == nullptr);
}

TEST_CASE("Buffer is move-only; the moved-from one is empty", "[buffer]") {
  Buffer<std::int32_t> a(64);
  a[3] = 42;
  const std::int32_t* p = a.data();
  Buffer<std::int32_t> b(std::move(a));
  CHECK(b.data() == p);
  CHECK(b[3] == 42);
  CHECK(a.empty());
  CHECK(a.data() == nullptr);
  Buffer<std::int32_t> c(8);
  c = std::move(b);
  CHECK(c.data() == p);
  CHECK(c.size() == 64);
  c.reset();
  CHECK(c.empty());
  auto u = Buffer<double>::uninitialized(16);
  CHECK(u.size() == 16);
  CHECK(aligned64(u.data()));
}

TEST_CASE("Buffer aligns blocks of an allocator that does not", "[buffer]") {
  SkewedAllocator skewed;
  {
    FloatArray a(100, skewed);
    CHECK(aligned64(a.data()));
    a[99] = 1.0f;  // within the block (ASan would say otherwise)
    CHECK(SkewedAllocator::live == 1);  // the unaligned first try was freed
  }
  CHECK(SkewedAllocator::live == 0);
}

TEST_CASE("RawPtr: unique_ptr with the allocator's raw deleter is the RAIIWrapper", "[buffer]") {
  AmmallocAllocator& am = ammalloc_allocator();
  am.reset();
  {
    RawPtr<float> p = make_raw<float>(am, 256);
    REQUIRE(p != nullptr);
    CHECK(aligned64(p.get()));
    p[255] = 1.0f;
    CHECK(p.get_deleter() == am.raw_deleter());
    CHECK(am.stats().allocation_count == 1);
  }
  CHECK(am.stats().allocated_bytes == 0);
  CHECK(am.stats().free_count == 1);
}

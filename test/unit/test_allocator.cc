// Tests of the C++ Allocator API (lib/include/ammalloc/allocator.h): DataPtr,
// CPUAllocator, AmmallocAllocator, the registry and the guard.
//
// The same engine-style Storage/Tensor code runs unchanged on both allocators
// (AC-12), also from several threads with cross-thread frees; stats are checked
// exactly (AC-3); reset() (AC-4); the zero-byte, failure, alignment and
// swapped-allocator contracts.
//
// Every test that reads stats starts with reset() and requires allocated_bytes
// == 0: that also proves the tests before it left no block alive.
#include <malloc.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "ammalloc/allocator.h"
#include "ammalloc/ammalloc.h"

using namespace ammalloc;

namespace {

// Usable size of a block as the allocator's own stats count it.
std::size_t usable(const Allocator* a, void* p) {
  return a == &ammalloc_allocator() ? am_malloc_usable_size(p) : malloc_usable_size(p);
}

bool aligned64(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & (kAlignment - 1)) == 0; }

// Requires a clean slate: counters zeroed and no block of `a` alive.
void start_clean(Allocator* a) {
  a->reset();
  const AllocatorStats s = a->stats();
  REQUIRE(s.allocated_bytes == 0);
  REQUIRE(s.peak_allocated_bytes == 0);
  REQUIRE(s.allocation_count == 0);
  REQUIRE(s.free_count == 0);
}

// Nothing alive and every allocation matched by a free.
void require_balanced(Allocator* a) {
  const AllocatorStats s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.allocation_count == s.free_count);
}

// ---- a small engine: code written against Allocator only ------------------------
namespace engine {

// Owns one buffer; knows nothing about which allocator it got.
class Storage {
 public:
  Storage(std::size_t nbytes, Allocator* allocator)
      : nbytes_(nbytes), allocator_(allocator), data_(allocator->allocate(nbytes)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::size_t nbytes() const { return nbytes_; }
  void* data() const { return data_.get(); }
  Allocator* allocator() const { return allocator_; }
  const DataPtr& data_ptr() const { return data_; }

  // Reallocates and copies the common prefix, like an engine's resize_.
  void resize(std::size_t nbytes) {
    DataPtr fresh = allocator_->allocate(nbytes);
    const std::size_t common = nbytes < nbytes_ ? nbytes : nbytes_;
    allocator_->copy_data(fresh.get(), data_.get(), common);
    data_ = std::move(fresh);  // the old block is freed by its own deleter
    nbytes_ = nbytes;
  }

 private:
  std::size_t nbytes_;
  Allocator* allocator_;
  DataPtr data_;
};

// float32 tensor with shared storage: copies alias, clone() deep-copies.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<std::int64_t> sizes, Allocator* allocator = get_allocator(DeviceType::CPU))
      : sizes_(std::move(sizes)) {
    storage_ = std::make_shared<Storage>(numel() * sizeof(float), allocator);
  }

  std::size_t numel() const {
    std::size_t n = 1;
    for (std::int64_t s : sizes_) n *= static_cast<std::size_t>(s);
    return n;
  }
  float* data() const { return static_cast<float*>(storage_->data()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool defined() const { return storage_ != nullptr; }

  void fill(float base) {
    float* d = data();
    for (std::size_t i = 0; i < numel(); ++i) d[i] = base + static_cast<float>(i % 1024);
  }
  bool holds(float base) const {
    const float* d = data();
    for (std::size_t i = 0; i < numel(); ++i)
      if (d[i] != base + static_cast<float>(i % 1024)) return false;
    return true;
  }
  Tensor clone() const {
    Tensor t(sizes_, storage_->allocator());
    storage_->allocator()->copy_data(t.data(), data(), numel() * sizeof(float));
    return t;
  }

 private:
  std::vector<std::int64_t> sizes_;
  std::shared_ptr<Storage> storage_;
};

// A mixed workload; returns nullptr on success or what went wrong. No Catch
// macros (it runs on worker threads, where Catch2 v2 assertions are unsafe).
const char* run_workload(Allocator* a, unsigned seed) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&x] {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
  };
  std::vector<Tensor> live;
  for (int i = 0; i < 64; ++i) {
    // Mostly metadata-sized tensors, some activations, a few empty ones.
    const std::int64_t rows = 1 + static_cast<std::int64_t>(next() % 8);
    const std::int64_t cols = (i % 16 == 15) ? 4096 : static_cast<std::int64_t>(next() % 300);
    Tensor t({rows, cols}, a);
    if (t.numel() == 0) {
      if (t.data() != nullptr) return "empty tensor got a non-null data pointer";
    } else {
      if (!aligned64(t.data())) return "tensor data is not 64-byte aligned";
      t.fill(static_cast<float>(i));
    }
    live.push_back(std::move(t));
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i].numel() == 0) continue;
    if (!live[i].holds(static_cast<float>(i))) return "tensor contents changed";
    Tensor alias = live[i];  // shares storage
    Tensor copy = live[i].clone();
    if (copy.data() == alias.data()) return "clone shares storage";
    if (!copy.holds(static_cast<float>(i))) return "clone differs";
    if (alias.storage().use_count() != 2) return "alias does not share storage";
  }
  // Grow and shrink storages in place of the engine's resize_.
  for (std::size_t i = 0; i < live.size(); i += 3) {
    Storage& s = *live[i].storage();
    const std::size_t old = s.nbytes();
    s.resize(old * 2 + 8);
    if (old != 0 && !live[i].holds(static_cast<float>(i))) return "resize lost data";
    s.resize(old);
  }
  live.erase(live.begin(), live.begin() + 20);  // free some early, rest at scope end
  return nullptr;
}

}  // namespace engine

Allocator* both_allocators() {
  return GENERATE(as<Allocator*>{}, static_cast<Allocator*>(&cpu_allocator()),
                  static_cast<Allocator*>(&ammalloc_allocator()));
}

// Deleter-swap helpers.
std::atomic<int> g_wrapped_calls{0};
DeleterFnPtr g_inner_deleter = nullptr;
void counting_deleter(void* ctx) {
  g_wrapped_calls.fetch_add(1);
  g_inner_deleter(ctx);
}
void never_called_deleter(void*) { FAIL("never_called_deleter ran"); }

}  // namespace

// ---- engine code unchanged on both allocators (AC-12) ------------------------------
TEST_CASE("engine Storage/Tensor code runs unchanged on both allocators", "[allocator][engine]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  for (unsigned seed = 1; seed <= 4; ++seed) CHECK(engine::run_workload(a, seed) == nullptr);
  require_balanced(a);
  CHECK(a->stats().allocation_count > 0);
}

TEST_CASE("engine code picks the allocator from the registry; a guard swaps ammalloc in",
          "[allocator][engine][registry]") {
  REQUIRE(get_allocator(DeviceType::CPU) == &cpu_allocator());
  start_clean(&cpu_allocator());
  start_clean(&ammalloc_allocator());

  engine::Tensor before({4, 16});  // default registry path: CPUAllocator
  engine::Tensor during;
  {
    AllocatorGuard guard(&ammalloc_allocator());
    during = engine::Tensor({4, 16});  // same engine code, now ammalloc
    CHECK(engine::run_workload(get_allocator(DeviceType::CPU), 7) == nullptr);
  }
  CHECK(get_allocator(DeviceType::CPU) == &cpu_allocator());
  CHECK(before.storage()->allocator() == &cpu_allocator());
  CHECK(during.storage()->allocator() == &ammalloc_allocator());
  CHECK(cpu_allocator().stats().allocation_count == 1);
  CHECK(ammalloc_allocator().stats().allocated_bytes == usable(&ammalloc_allocator(), during.data()));

  // `during` outlives the guard and is freed by ammalloc's deleter, not the CPU one.
  during = engine::Tensor();
  before = engine::Tensor();
  require_balanced(&cpu_allocator());
  require_balanced(&ammalloc_allocator());
  CHECK(cpu_allocator().stats().free_count == 1);
}

TEST_CASE("engine code on several threads, with cross-thread frees", "[allocator][engine][threads]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;

  std::atomic<int> failures{0};
  std::vector<std::vector<engine::Tensor>> produced(kThreads);
  {
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        for (unsigned round = 0; round < 3; ++round)
          if (engine::run_workload(a, 100u * static_cast<unsigned>(t) + round) != nullptr) failures.fetch_add(1);
        for (int i = 0; i < kPerThread; ++i) {
          engine::Tensor x({1 + (i % 7), 1 + (i * 37) % 500}, a);
          x.fill(static_cast<float>(t * 1000 + i));
          produced[static_cast<std::size_t>(t)].push_back(std::move(x));
        }
      });
    }
    for (auto& w : workers) w.join();
  }
  REQUIRE(failures.load() == 0);
  const AllocatorStats mid = a->stats();
  CHECK(mid.allocation_count - mid.free_count == static_cast<std::size_t>(kThreads * kPerThread));
  std::size_t expect_bytes = 0;
  for (auto& v : produced)
    for (auto& x : v) expect_bytes += usable(a, x.data());
  CHECK(mid.allocated_bytes == expect_bytes);
  CHECK(mid.peak_allocated_bytes >= expect_bytes);

  // Thread t verifies and frees what thread t+1 allocated.
  {
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        const int owner = (t + 1) % kThreads;
        auto& v = produced[static_cast<std::size_t>(owner)];
        for (int i = 0; i < kPerThread; ++i)
          if (!v[static_cast<std::size_t>(i)].holds(static_cast<float>(owner * 1000 + i))) failures.fetch_add(1);
        v.clear();
      });
    }
    for (auto& w : workers) w.join();
  }
  CHECK(failures.load() == 0);
  require_balanced(a);
}

TEST_CASE("counts stay exact across many short-lived threads", "[allocator][stats][threads]") {
  // More threads over time than the 512 per-thread count shards: exiting threads
  // hand their shard to later ones without losing counts.
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  constexpr int kBatches = 80, kBatch = 8, kEach = 10;
  std::atomic<int> bad{0};
  for (int b = 0; b < kBatches; ++b) {
    std::vector<std::thread> batch;
    for (int t = 0; t < kBatch; ++t)
      batch.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          DataPtr d = a->allocate(static_cast<std::size_t>(16 + 16 * i));
          if (!d) bad.fetch_add(1);
        }
      });
    for (auto& th : batch) th.join();
  }
  CHECK(bad.load() == 0);
  AllocatorStats s = a->stats();
  CHECK(s.allocation_count == static_cast<std::size_t>(kBatches * kBatch * kEach));
  CHECK(s.free_count == s.allocation_count);
  CHECK(s.allocated_bytes == 0);

  // More threads alive at once than shards: the late ones count in the shared
  // overflow shard, still exactly.
  constexpr int kAlive = 530;
  std::atomic<int> started{0};
  std::atomic<bool> go{false};
  {
    std::vector<std::thread> crowd;
    for (int t = 0; t < kAlive; ++t)
      crowd.emplace_back([&] {
        DataPtr first = a->allocate(32);  // claims a shard (or the overflow one)
        started.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        DataPtr second = a->allocate(64);
        if (!first || !second) bad.fetch_add(1);
      });
    while (started.load() != kAlive) std::this_thread::yield();
    go = true;
    for (auto& th : crowd) th.join();
  }
  CHECK(bad.load() == 0);
  s = a->stats();
  CHECK(s.allocation_count == static_cast<std::size_t>(kBatches * kBatch * kEach + 2 * kAlive));
  CHECK(s.free_count == s.allocation_count);
  CHECK(s.allocated_bytes == 0);
}

namespace {
// An engine-defined allocator: per-block context (data != context), no raw
// deleter; built on ammalloc. Created with `new` (Allocator's class-specific
// operator new, from the am_* heap).
class alignas(128) ContextAllocator final : public Allocator {
 public:
  struct Block {
    void* data;
    std::size_t size;
    std::atomic<int>* frees;
  };
  DataPtr allocate(std::size_t n) override {
    if (n == 0) return DataPtr(nullptr, DeviceType::CPU);
    void* data = ammalloc_allocator().raw_allocate(n);
    auto* ctx = new Block{data, n, &frees};
    return DataPtr(data, ctx, &free_block, DeviceType::CPU);
  }
  const char* name() const noexcept override { return "ContextAllocator"; }
  std::atomic<int> frees{0};

 private:
  static void free_block(void* c) {
    auto* b = static_cast<Block*>(c);
    b->frees->fetch_add(1);
    ammalloc_allocator().raw_deallocate(b->data);
    delete b;
  }
};
}  // namespace

TEST_CASE("an engine-defined Allocator subclass works with the same engine code", "[allocator][engine]") {
  start_clean(&ammalloc_allocator());
  std::unique_ptr<Allocator> owned = std::make_unique<ContextAllocator>();  // over-aligned: aligned new
  CHECK((reinterpret_cast<std::uintptr_t>(owned.get()) & 127) == 0);
  auto* ctx_alloc = static_cast<ContextAllocator*>(owned.get());
  CHECK(engine::run_workload(owned.get(), 11) == nullptr);
  {
    AllocatorGuard guard(owned.get(), DeviceType::NPU);
    DataPtr d = get_allocator(DeviceType::NPU)->allocate(100);
    CHECK(d.get() != d.get_context());
    CHECK(d.cast_context<ContextAllocator::Block>(d.get_deleter())->size == 100);
  }
  CHECK(get_allocator(DeviceType::NPU) == nullptr);
  CHECK(ctx_alloc->frees.load() == static_cast<int>(ammalloc_allocator().stats().free_count));
  owned.reset();  // deleted through Allocator* (virtual dtor, class operator delete)
  require_balanced(&ammalloc_allocator());

  auto* heap_error = new AllocationError(1, 64, "x");  // class-specific new/delete
  CHECK(heap_error->size() == 1);
  delete heap_error;
}

// ---- stats (AC-3) and reset (AC-4) -------------------------------------------------
TEST_CASE("stats are exact", "[allocator][stats]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);

  DataPtr p1 = a->allocate(100);
  DataPtr p2 = a->allocate(1000);
  DataPtr p3 = a->allocate(5000);
  const std::size_t u1 = usable(a, p1.get()), u2 = usable(a, p2.get()), u3 = usable(a, p3.get());
  CHECK(u1 >= 100);
  CHECK(u2 >= 1000);
  CHECK(u3 >= 5000);

  AllocatorStats s = a->stats();
  CHECK(s.allocated_bytes == u1 + u2 + u3);
  CHECK(s.peak_allocated_bytes == u1 + u2 + u3);
  CHECK(s.allocation_count == 3);
  CHECK(s.free_count == 0);
  // 0 means "unknown" (e.g. a malloc without mallinfo2 under CPUAllocator).
  CHECK((s.reserved_bytes == 0 || s.reserved_bytes >= s.allocated_bytes));

  p2.clear();
  s = a->stats();
  CHECK(s.allocated_bytes == u1 + u3);
  CHECK(s.peak_allocated_bytes == u1 + u2 + u3);
  CHECK(s.free_count == 1);

  a->reset_peak();
  CHECK(a->stats().peak_allocated_bytes == u1 + u3);

  DataPtr p4 = a->allocate(64);
  const std::size_t u4 = usable(a, p4.get());
  CHECK(a->stats().peak_allocated_bytes == u1 + u3 + u4);

  p1.clear();
  p3.clear();
  p4.clear();
  s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.allocation_count == 4);
  CHECK(s.free_count == 4);
  CHECK(s.peak_allocated_bytes == u1 + u3 + u4);

  // raw_allocate / raw_deallocate are counted the same way.
  void* r = a->raw_allocate(300);
  CHECK(a->stats().allocated_bytes == usable(a, r));
  a->raw_deallocate(r);
  CHECK(a->stats().allocated_bytes == 0);
  CHECK(a->stats().free_count == 5);
}

TEST_CASE("the two allocators keep separate stats", "[allocator][stats]") {
  start_clean(&cpu_allocator());
  start_clean(&ammalloc_allocator());
  DataPtr c = cpu_allocator().allocate(256);
  CHECK(cpu_allocator().stats().allocation_count == 1);
  CHECK(ammalloc_allocator().stats().allocation_count == 0);
  DataPtr m = ammalloc_allocator().allocate(256);
  CHECK(cpu_allocator().stats().allocation_count == 1);
  CHECK(ammalloc_allocator().stats().allocation_count == 1);
}

TEST_CASE("ammalloc reserved bytes come from the heap_size property", "[allocator][stats]") {
  std::size_t heap = 0;
  if (am_get_numeric_property("generic.heap_size", &heap) == 0) {
    WARN("core has no generic.heap_size yet: reserved_bytes is 0");
    CHECK(ammalloc_allocator().stats().reserved_bytes == 0);
    return;
  }
  DataPtr big = ammalloc_allocator().allocate(size_t{4} << 20);
  const AllocatorStats s = ammalloc_allocator().stats();
  CHECK(s.reserved_bytes >= s.allocated_bytes);
  CHECK(s.reserved_bytes >= (size_t{4} << 20));
}

TEST_CASE("reset() zeroes the counters and releases free memory (FR-4)", "[allocator][reset]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  {
    std::vector<DataPtr> blocks;
    for (std::size_t i = 0; i < 2000; ++i) blocks.push_back(a->allocate(8 + (i * 97) % 4096));
    for (int i = 0; i < 4; ++i) blocks.push_back(a->allocate(std::size_t{1} << 20));
  }
  AllocatorStats s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.allocation_count == 2004);
  CHECK(s.free_count == 2004);
  CHECK(s.peak_allocated_bytes > (std::size_t{4} << 20));
  const std::size_t reserved_before = s.reserved_bytes;

  a->reset();
  s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.peak_allocated_bytes == 0);
  CHECK(s.allocation_count == 0);
  CHECK(s.free_count == 0);
  CHECK(s.reserved_bytes <= reserved_before);

  // Usable for the next test right away.
  DataPtr again = a->allocate(128);
  REQUIRE(again);
  CHECK(a->stats().allocation_count == 1);
}

TEST_CASE("reset() with a block alive keeps allocated_bytes truthful", "[allocator][reset]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  DataPtr live = a->allocate(1000);
  DataPtr gone = a->allocate(2000);
  gone.clear();
  const std::size_t u = usable(a, live.get());
  a->reset();
  AllocatorStats s = a->stats();
  CHECK(s.allocated_bytes == u);
  CHECK(s.peak_allocated_bytes == u);
  CHECK(s.allocation_count == 0);
  CHECK(s.free_count == 0);
  live.clear();
  s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.free_count == 1);
}

// ---- contracts ---------------------------------------------------------------------
TEST_CASE("zero-byte contract: null data, nothing counted, destruction calls nothing",
          "[allocator][contract]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  {
    DataPtr z = a->allocate(0);
    CHECK_FALSE(z);
    CHECK(z == nullptr);
    CHECK(z.get() == nullptr);
    CHECK(z.get_context() == nullptr);
    CHECK(z.get_deleter() == a->raw_deleter());
    CHECK(z.device() == DeviceType::CPU);
  }
  CHECK(a->raw_allocate(0) == nullptr);
  a->raw_deallocate(nullptr);
  a->raw_deleter()(nullptr);  // the deleter itself tolerates null
  engine::Tensor empty({0, 16}, a);
  CHECK(empty.data() == nullptr);
  engine::Tensor copy = empty.clone();  // copy_data of 0 bytes between nulls
  const AllocatorStats s = a->stats();
  CHECK(s.allocated_bytes == 0);
  CHECK(s.allocation_count == 0);
  CHECK(s.free_count == 0);
}

TEST_CASE("failure contract: AllocationError carries the size, nothing leaks", "[allocator][contract]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  DataPtr keep = a->allocate(64);
  const AllocatorStats before = a->stats();

  const std::size_t huge = SIZE_MAX / 2;
  bool thrown = false;
  try {
    DataPtr never = a->allocate(huge);
  } catch (const AllocationError& e) {
    thrown = true;
    CHECK(e.size() == huge);
    CHECK(e.alignment() == kAlignment);
    CHECK(std::string(e.allocator_name()) == a->name());
    CHECK_THAT(e.what(), Catch::Contains(std::to_string(huge)) && Catch::Contains(a->name()));
  }
  CHECK(thrown);
  CHECK_THROWS_AS(a->allocate(SIZE_MAX), std::bad_alloc);
  CHECK_THROWS_AS(a->raw_allocate(huge), AllocationError);

  const AllocatorStats after = a->stats();
  CHECK(after.allocated_bytes == before.allocated_bytes);
  CHECK(after.peak_allocated_bytes == before.peak_allocated_bytes);
  CHECK(after.allocation_count == before.allocation_count);
  CHECK(after.free_count == before.free_count);

  // Still works after a failure.
  DataPtr ok = a->allocate(4096);
  CHECK(ok);
}

TEST_CASE("AllocationError is a std::bad_alloc with a self-contained message", "[allocator][contract]") {
  const AllocationError e(12345, 64, "TestAllocator");
  const std::bad_alloc& base = e;
  CHECK(std::string(base.what()) == "ammalloc: TestAllocator failed to allocate 12345 bytes (alignment 64)");
  const AllocationError copy = e;
  CHECK(copy.size() == 12345);
  CHECK(std::string(copy.what()) == e.what());
  const AllocationError max(SIZE_MAX, 64, nullptr);
  CHECK_THAT(max.what(), Catch::Contains("18446744073709551615"));
}

TEST_CASE("every block is 64-byte aligned and fully writable", "[allocator][contract]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  std::vector<std::size_t> sizes;
  for (std::size_t n = 1; n <= 512; ++n) sizes.push_back(n);
  for (std::size_t p = 512; p <= (std::size_t{8} << 20); p *= 2) {
    sizes.push_back(p - 1);
    sizes.push_back(p);
    sizes.push_back(p + 1);
    sizes.push_back(p + p / 3);
  }
  std::vector<DataPtr> live;
  for (std::size_t n : sizes) {
    DataPtr d = a->allocate(n);
    REQUIRE(d);
    INFO("size " << n);
    CHECK(aligned64(d.get()));
    CHECK(usable(a, d.get()) >= n);
    std::memset(d.get(), static_cast<int>(n & 0xff), n);
    live.push_back(std::move(d));
  }
  for (std::size_t i = 0; i < live.size(); ++i) {
    const auto* c = static_cast<const unsigned char*>(live[i].get());
    const std::size_t n = sizes[i];
    CHECK((c[0] == (n & 0xff) && c[n - 1] == (n & 0xff)));
  }
  void* r = a->raw_allocate(77);
  CHECK(aligned64(r));
  a->raw_deallocate(r);
}

TEST_CASE("copy_data copies between blocks", "[allocator]") {
  Allocator* a = both_allocators();
  DataPtr src = a->allocate(1000);
  DataPtr dst = a->allocate(1000);
  auto* s = static_cast<unsigned char*>(src.get());
  for (int i = 0; i < 1000; ++i) s[i] = static_cast<unsigned char>(i * 7);
  a->copy_data(dst.get(), src.get(), 1000);
  CHECK(std::memcmp(dst.get(), src.get(), 1000) == 0);
  a->copy_data(nullptr, nullptr, 0);
}

// ---- DataPtr -----------------------------------------------------------------------
TEST_CASE("DataPtr moves: the moved-from object is empty and safe", "[dataptr]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);

  DataPtr x = a->allocate(128);
  void* p = x.get();
  REQUIRE(p != nullptr);
  CHECK(x.get_context() == p);

  DataPtr y = std::move(x);
  CHECK_FALSE(x);  // NOLINT(bugprone-use-after-move): that is the point
  CHECK(x.get() == nullptr);
  CHECK(x.get_context() == nullptr);
  CHECK(x.get_deleter() == nullptr);
  CHECK(y.get() == p);
  CHECK(a->stats().free_count == 0);

  x = std::move(y);  // move back into the moved-from object
  CHECK(x.get() == p);
  CHECK_FALSE(y);

  DataPtr z = a->allocate(256);
  z = std::move(x);  // z's own block is freed now, exactly once
  CHECK(a->stats().free_count == 1);
  CHECK(z.get() == p);

  DataPtr& alias = z;
  z = std::move(alias);  // self-move: no-op
  CHECK(z.get() == p);
  CHECK(a->stats().free_count == 1);

  x.clear();  // clearing / moving empty objects is harmless
  y = std::move(x);
  DataPtr w(std::move(y));
  CHECK_FALSE(w);

  DataPtr other = a->allocate(64);
  void* q = other.get();
  swap(z, other);
  CHECK(z.get() == q);
  CHECK(other.get() == p);

  z.clear();
  other.clear();
  CHECK(a->stats().free_count == 3);
  CHECK(a->stats().allocation_count == 3);
  require_balanced(a);
}

TEST_CASE("DataPtr compare_exchange_deleter swaps the deleter", "[dataptr]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  g_wrapped_calls = 0;
  g_inner_deleter = a->raw_deleter();

  DataPtr d = a->allocate(512);
  void* p = d.get();
  CHECK_FALSE(d.compare_exchange_deleter(&never_called_deleter, &counting_deleter));
  CHECK(d.get_deleter() == a->raw_deleter());
  CHECK(d.cast_context<void>(&counting_deleter) == nullptr);

  REQUIRE(d.compare_exchange_deleter(a->raw_deleter(), &counting_deleter));
  CHECK(d.get_deleter() == &counting_deleter);
  CHECK(d.cast_context<void>(&counting_deleter) == p);
  CHECK(d.get() == p);

  DataPtr moved = std::move(d);  // the swapped deleter travels with the pointer
  d.clear();
  CHECK(g_wrapped_calls.load() == 0);
  moved.clear();
  CHECK(g_wrapped_calls.load() == 1);
  moved.clear();
  CHECK(g_wrapped_calls.load() == 1);  // once only
  require_balanced(a);
  CHECK(a->stats().free_count == 1);
}

TEST_CASE("DataPtr release_context hands ownership to the caller", "[dataptr]") {
  Allocator* a = both_allocators();
  INFO(a->name());
  start_clean(a);
  void* ctx = nullptr;
  {
    DataPtr d = a->allocate(200);
    void* p = d.get();
    ctx = d.release_context();
    CHECK(ctx == p);
    CHECK(d.get() == p);  // data stays readable, as in c10
    CHECK(d.get_context() == nullptr);
  }
  CHECK(a->stats().free_count == 0);  // destruction freed nothing
  a->raw_deallocate(ctx);
  CHECK(a->stats().free_count == 1);
  require_balanced(a);
}

TEST_CASE("DataPtr non-owning and custom contexts", "[dataptr]") {
  alignas(64) static unsigned char buf[64];
  {
    DataPtr view(buf, DeviceType::CPU);
    CHECK(view.get() == buf);
    CHECK(view.get_context() == nullptr);
    CHECK(view.get_deleter() == nullptr);
  }  // frees nothing
  struct Ctx {
    int* counter;
  };
  static int frees = 0;
  frees = 0;
  auto* ctx = new Ctx{&frees};
  {
    DataPtr d(buf, ctx, [](void* c) {
      auto* cc = static_cast<Ctx*>(c);
      ++*cc->counter;
      delete cc;
    }, DeviceType::NPU);
    CHECK(d.device() == DeviceType::NPU);
    CHECK(d.get() == buf);
    CHECK(d.get_context() == ctx);
  }
  CHECK(frees == 1);
}

// ---- registry and guard --------------------------------------------------------
TEST_CASE("registry: CPU default, set/get, nullptr restores the default", "[registry]") {
  CHECK(AllocatorRegistry::get(DeviceType::CPU) == &cpu_allocator());
  CHECK(AllocatorRegistry::get(DeviceType::CUDA) == nullptr);
  CHECK(AllocatorRegistry::get(static_cast<DeviceType>(100)) == nullptr);

  Allocator* prev = AllocatorRegistry::set(DeviceType::CPU, &ammalloc_allocator());  // the one call
  CHECK(prev == &cpu_allocator());
  CHECK(get_allocator(DeviceType::CPU) == &ammalloc_allocator());
  CHECK(std::string(get_allocator(DeviceType::CPU)->name()) == "AmmallocAllocator");
  CHECK(set_allocator(DeviceType::CPU, nullptr) == &ammalloc_allocator());
  CHECK(get_allocator(DeviceType::CPU) == &cpu_allocator());

  CHECK(AllocatorRegistry::set(DeviceType::NPU, &ammalloc_allocator()) == nullptr);
  CHECK(AllocatorRegistry::get(DeviceType::NPU) == &ammalloc_allocator());
  CHECK(AllocatorRegistry::set(DeviceType::NPU, nullptr) == &ammalloc_allocator());
  CHECK(AllocatorRegistry::get(DeviceType::NPU) == nullptr);
  CHECK(std::string(device_type_name(DeviceType::CPU)) == "cpu");
}

TEST_CASE("guard: nests, restores, and old DataPtrs keep their own deleter", "[registry]") {
  start_clean(&cpu_allocator());
  start_clean(&ammalloc_allocator());
  DataPtr from_am;
  DataPtr from_cpu;
  {
    AllocatorGuard outer(&ammalloc_allocator());
    CHECK(outer.previous() == &cpu_allocator());
    CHECK(get_allocator(DeviceType::CPU) == &ammalloc_allocator());
    from_am = get_allocator(DeviceType::CPU)->allocate(1000);
    {
      AllocatorGuard inner(&cpu_allocator());
      CHECK(get_allocator(DeviceType::CPU) == &cpu_allocator());
      from_cpu = get_allocator(DeviceType::CPU)->allocate(1000);
    }
    CHECK(get_allocator(DeviceType::CPU) == &ammalloc_allocator());
  }
  CHECK(get_allocator(DeviceType::CPU) == &cpu_allocator());
  CHECK(from_am.get_deleter() == ammalloc_allocator().raw_deleter());
  CHECK(from_cpu.get_deleter() == cpu_allocator().raw_deleter());
  CHECK(ammalloc_allocator().raw_deleter() != cpu_allocator().raw_deleter());

  from_am.clear();  // after the swap back: still freed by ammalloc
  CHECK(ammalloc_allocator().stats().free_count == 1);
  CHECK(cpu_allocator().stats().free_count == 0);
  from_cpu.clear();
  CHECK(cpu_allocator().stats().free_count == 1);
  require_balanced(&cpu_allocator());
  require_balanced(&ammalloc_allocator());
}

TEST_CASE("registry is safe under concurrent get/set", "[registry][threads]") {
  start_clean(&cpu_allocator());
  start_clean(&ammalloc_allocator());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  Allocator* const choices[2] = {&cpu_allocator(), &ammalloc_allocator()};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < 20000; ++i) {
        AllocatorGuard g(choices[(i + w) & 1], DeviceType::CUDA);
      }
    });
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&] {
      while (!stop.load()) {
        Allocator* a = AllocatorRegistry::get(DeviceType::CUDA);
        if (a == nullptr) continue;
        if (a != choices[0] && a != choices[1]) {
          bad.fetch_add(1);
          continue;
        }
        DataPtr d = a->allocate(48);  // freed by its own deleter whatever is registered now
        if (!d || !aligned64(d.get())) bad.fetch_add(1);
      }
    });
  threads[0].join();
  threads[1].join();
  stop = true;
  threads[2].join();
  threads[3].join();
  CHECK(bad.load() == 0);
  AllocatorRegistry::set(DeviceType::CUDA, nullptr);
  CHECK(AllocatorRegistry::get(DeviceType::CUDA) == nullptr);
  require_balanced(&cpu_allocator());
  require_balanced(&ammalloc_allocator());
}

// ammalloc C++ Allocator API: the interface inference-engine tensor code codes
// against (c10-style), with two CPU implementations side by side:
//
//   CPUAllocator       posix_memalign(64) / free: the baseline, registered for
//                      DeviceType::CPU by default.
//   AmmallocAllocator  am_memalign(64) / am_free from libammalloc_core: works in a
//                      process that does NOT preload ammalloc; not registered by
//                      default (one call registers it, see AllocatorRegistry).
//
// Code written against `Allocator` / `DataPtr` works unchanged with either.
//
// Contracts (tested in test/unit/test_allocator.cc):
//
//   Zero bytes   allocate(0) allocates nothing and returns a DataPtr whose data
//                and context are null (operator bool is false) and whose deleter
//                is the allocator's raw_deleter(); destroying it calls nothing.
//                Stats do not change. raw_allocate(0) returns nullptr, and
//                raw_deallocate(nullptr) is a no-op.
//   Failure      allocate(n) that cannot be satisfied throws AllocationError
//                (derived from std::bad_alloc) whose size() is n. Nothing is
//                allocated or leaked and the stats do not change.
//   Alignment    every non-null pointer from CPUAllocator and AmmallocAllocator
//                is aligned to kAlignment (64) bytes.
//   Swapping     a DataPtr carries its own deleter: swapping the registered
//                allocator (AllocatorRegistry::set, AllocatorGuard) while DataPtrs
//                from the old one are alive is safe; each frees through its own.
//   Stats        per allocator class (all users of cpu_allocator() share one set
//                of counters; likewise ammalloc_allocator()), kept with relaxed
//                atomics: allocated bytes and its peak in one shared word (exact
//                even across threads), counts in per-thread shards that stats()
//                sums. allocated_bytes counts USABLE sizes
//                (malloc_usable_size / am_malloc_usable_size, >= the size asked
//                for), so that a free, which only sees the pointer, subtracts
//                exactly what the allocation added. See AllocatorStats.
//
// Nothing in the implementation allocates on its own, except the exception
// object when AllocationError is thrown.
#ifndef AMMALLOC_ALLOCATOR_H
#define AMMALLOC_ALLOCATOR_H

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#if defined(__GNUC__)
#define AM_CXX_API __attribute__((visibility("default")))
#else
#define AM_CXX_API
#endif

namespace ammalloc {

// Alignment of every block CPUAllocator and AmmallocAllocator hand out: one
// cache line, and what vectorised tensor kernels (AVX-512 loads) want.
inline constexpr std::size_t kAlignment = 64;

// ---- devices ---------------------------------------------------------------------
enum class DeviceType : std::int8_t {
  CPU = 0,
  CUDA = 1,
  HIP = 2,
  NPU = 3,  // e.g. CANN
  // Room for more; the registry has kMaxDeviceTypes slots.
};
inline constexpr std::size_t kMaxDeviceTypes = 8;

AM_CXX_API const char* device_type_name(DeviceType d) noexcept;

// ---- DataPtr ---------------------------------------------------------------------
// A deleter receives the DataPtr's context (for both allocators here, the context
// is the data pointer itself).
using DeleterFnPtr = void (*)(void*);

// Move-only owner of {data, context, deleter, device}. The destructor calls
// deleter(context) exactly once when both are non-null. A moved-from DataPtr is
// empty (everything null) and safe to destroy, assign or move again.
class DataPtr {
 public:
  constexpr DataPtr() noexcept = default;
  // Non-owning: no context and no deleter; destroying it frees nothing.
  constexpr DataPtr(void* data, DeviceType device) noexcept : data_(data), device_(device) {}
  constexpr DataPtr(void* data, void* ctx, DeleterFnPtr deleter, DeviceType device) noexcept
      : data_(data), ctx_(ctx), deleter_(deleter), device_(device) {}

  DataPtr(const DataPtr&) = delete;
  DataPtr& operator=(const DataPtr&) = delete;

  DataPtr(DataPtr&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        ctx_(std::exchange(o.ctx_, nullptr)),
        deleter_(std::exchange(o.deleter_, nullptr)),
        device_(o.device_) {}

  // Frees what this held, then takes o's contents. Self-move is a no-op.
  DataPtr& operator=(DataPtr&& o) noexcept {
    if (this != &o) {
      DataPtr tmp(std::move(o));
      swap(tmp);
    }  // tmp (our previous contents) is destroyed here
    return *this;
  }

  ~DataPtr() { free_(); }

  // Frees now and leaves the DataPtr empty (device unchanged).
  void clear() noexcept {
    free_();
    data_ = nullptr;
    ctx_ = nullptr;
    deleter_ = nullptr;
  }

  void* get() const noexcept { return data_; }
  void* mutable_get() noexcept { return data_; }
  void* get_context() const noexcept { return ctx_; }
  DeleterFnPtr get_deleter() const noexcept { return deleter_; }
  DeviceType device() const noexcept { return device_; }
  void unsafe_set_device(DeviceType d) noexcept { device_ = d; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  // Gives up ownership: returns the context and forgets it, so that destruction
  // calls nothing. data() and the deleter stay readable (as in c10); the caller
  // now frees the context (e.g. with Allocator::raw_deallocate).
  [[nodiscard]] void* release_context() noexcept { return std::exchange(ctx_, nullptr); }

  // If the current deleter is `expected`, replaces it with `new_deleter` (which
  // will receive the same context) and returns true; otherwise changes nothing
  // and returns false. The new deleter becomes responsible for freeing.
  [[nodiscard]] bool compare_exchange_deleter(DeleterFnPtr expected, DeleterFnPtr new_deleter) noexcept {
    if (deleter_ != expected) return false;
    deleter_ = new_deleter;
    return true;
  }

  // The context as T* if the deleter is `expected`, nullptr otherwise.
  template <typename T>
  T* cast_context(DeleterFnPtr expected) const noexcept {
    return deleter_ == expected ? static_cast<T*>(ctx_) : nullptr;
  }

  void swap(DataPtr& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(ctx_, o.ctx_);
    std::swap(deleter_, o.deleter_);
    std::swap(device_, o.device_);
  }
  friend void swap(DataPtr& a, DataPtr& b) noexcept { a.swap(b); }
  friend bool operator==(const DataPtr& p, std::nullptr_t) noexcept { return !p; }

 private:
  void free_() noexcept {
    if (ctx_ != nullptr && deleter_ != nullptr) deleter_(ctx_);
  }

  void* data_ = nullptr;
  void* ctx_ = nullptr;
  DeleterFnPtr deleter_ = nullptr;
  DeviceType device_ = DeviceType::CPU;
};

// ---- failure ---------------------------------------------------------------------
// Thrown by Allocator::allocate when the request cannot be satisfied. Catchable as
// std::bad_alloc. Holds no heap memory (the message lives in the object).
class AM_CXX_API AllocationError : public std::bad_alloc {
 public:
  AllocationError(std::size_t size, std::size_t alignment, const char* allocator_name) noexcept;
  ~AllocationError() override;
  const char* what() const noexcept override;
  // The number of bytes that was asked for.
  std::size_t size() const noexcept { return size_; }
  std::size_t alignment() const noexcept { return alignment_; }
  // Name of the allocator that failed (a string literal; never null).
  const char* allocator_name() const noexcept { return allocator_; }

  // From the am_* heap (see Allocator::operator new). Thrown objects do not use
  // these: the C++ runtime allocates exceptions itself.
  static void* operator new(std::size_t n);
  static void operator delete(void* p) noexcept;

 private:
  std::size_t size_;
  std::size_t alignment_;
  const char* allocator_;
  char msg_[128];
};

// ---- statistics ------------------------------------------------------------------
// A snapshot. Each field is read with a relaxed load; while other threads allocate,
// the fields need not be mutually consistent. With no concurrent activity they are
// exact.
struct AllocatorStats {
  // Bytes in live blocks handed out by this allocator, counted as their usable
  // size (malloc_usable_size / am_malloc_usable_size), which is >= the size
  // asked for. Zero-byte requests count nothing.
  std::size_t allocated_bytes = 0;
  // Highest allocated_bytes since start, reset() or reset_peak(); exact, also
  // with several threads allocating.
  std::size_t peak_allocated_bytes = 0;
  // Bytes the underlying heap holds from the OS (process-wide for that heap, not
  // just this allocator's blocks): ammalloc's "generic.heap_size" property for
  // AmmallocAllocator; glibc mallinfo2() arena + hblkhd for CPUAllocator; 0 when
  // unknown.
  std::size_t reserved_bytes = 0;
  // Successful non-zero allocations and frees since start or reset(). Failed
  // allocations are not counted.
  std::size_t allocation_count = 0;
  std::size_t free_count = 0;
};

// ---- the interface -------------------------------------------------------------
class AM_CXX_API Allocator {
 public:
  constexpr Allocator() noexcept = default;
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  virtual ~Allocator();

  // An Allocator (or a subclass) created with `new` lives in the am_* heap, so
  // that the library's deleting destructors import no global operator delete
  // (docs/ARCHITECTURE.md, rule 1). Behaves like the global forms (new-handler loop,
  // std::bad_alloc).
  static void* operator new(std::size_t n);
  static void* operator new(std::size_t n, std::align_val_t a);
  static void operator delete(void* p) noexcept;
  static void operator delete(void* p, std::align_val_t a) noexcept;

  // nbytes > 0: a DataPtr owning a new block (throws AllocationError on failure).
  // nbytes == 0: see "Zero bytes" above.
  virtual DataPtr allocate(std::size_t nbytes) = 0;

  // If non-null, a deleter that frees a block given only its data pointer; then
  // raw_allocate/raw_deallocate work. Both allocators here provide one.
  virtual DeleterFnPtr raw_deleter() const noexcept { return nullptr; }

  // allocate() without the DataPtr: the caller frees with raw_deallocate. Aborts
  // (a usage error) if this allocator has no raw_deleter() or its DataPtr's
  // context differs from its data.
  void* raw_allocate(std::size_t nbytes);
  // Frees a pointer from raw_allocate; nullptr is a no-op.
  void raw_deallocate(void* ptr);

  // Copies nbytes between two blocks of this allocator's device (memcpy for CPU).
  virtual void copy_data(void* dst, const void* src, std::size_t nbytes) const;

  // Short, stable name ("CPUAllocator", "AmmallocAllocator").
  virtual const char* name() const noexcept = 0;

  virtual AllocatorStats stats() const noexcept { return {}; }
  // Sets peak_allocated_bytes to the current allocated_bytes.
  virtual void reset_peak() noexcept {}
  // For test isolation: zeroes allocation_count, free_count and the peak (the
  // peak restarts at the current allocated_bytes, which keeps describing blocks
  // still alive: 0 when there are none) and returns free cached memory to the OS
  // where the allocator can.
  virtual void reset() noexcept {}
};

// posix_memalign(kAlignment) / free, so it goes to whatever malloc the process
// uses (glibc, or ammalloc itself under LD_PRELOAD). Registered for CPU by default.
class AM_CXX_API CPUAllocator final : public Allocator {
 public:
  DataPtr allocate(std::size_t nbytes) override;
  DeleterFnPtr raw_deleter() const noexcept override;
  const char* name() const noexcept override { return "CPUAllocator"; }
  AllocatorStats stats() const noexcept override;
  void reset_peak() noexcept override;
  // Zeroes the counters. (It does not trim the system heap: that is not this
  // allocator's memory to manage.)
  void reset() noexcept override;

 private:
  friend struct detail_access;
  constexpr CPUAllocator() noexcept = default;
};

// am_memalign(kAlignment) / am_free from libammalloc_core (the am_* names, no
// interposition), so it lives beside the system malloc in one process. Not
// registered by default:
//     ammalloc::AllocatorRegistry::set(ammalloc::DeviceType::CPU, &ammalloc::ammalloc_allocator());
class AM_CXX_API AmmallocAllocator final : public Allocator {
 public:
  DataPtr allocate(std::size_t nbytes) override;
  DeleterFnPtr raw_deleter() const noexcept override;
  const char* name() const noexcept override { return "AmmallocAllocator"; }
  AllocatorStats stats() const noexcept override;
  void reset_peak() noexcept override;
  // Zeroes the counters and calls am_reset(): every thread cache of the am_*
  // heap is emptied and all free memory goes back to the OS (process-wide for
  // that heap; blocks in use are untouched). Call it with no block of this
  // allocator alive for a clean slate: then every counter reads 0.
  void reset() noexcept override;

 private:
  friend struct detail_access;
  constexpr AmmallocAllocator() noexcept = default;
};

// The process-wide instances (never destroyed, usable during static init and exit).
AM_CXX_API CPUAllocator& cpu_allocator() noexcept;
AM_CXX_API AmmallocAllocator& ammalloc_allocator() noexcept;

// ---- registry --------------------------------------------------------------------
// One allocator per device, process-wide; get/set are lock-free atomics and safe
// from any thread. CPU starts as &cpu_allocator(); other devices start null.
// get() of a device outside [0, kMaxDeviceTypes) returns nullptr; set() of one
// aborts (a programming error).
class AM_CXX_API AllocatorRegistry {
 public:
  // The allocator for d (for CPU never null).
  static Allocator* get(DeviceType d) noexcept;
  // Installs a for d and returns the previous one. For CPU, nullptr restores the
  // default CPUAllocator. Blocks allocated earlier keep their own deleters.
  static Allocator* set(DeviceType d, Allocator* a) noexcept;
};

inline Allocator* get_allocator(DeviceType d) noexcept { return AllocatorRegistry::get(d); }
inline Allocator* set_allocator(DeviceType d, Allocator* a) noexcept { return AllocatorRegistry::set(d, a); }

// Installs an allocator for a device for the guard's scope and restores the
// previous one when it ends. Process-wide (not per thread): guards nest LIFO;
// overlapping guards in different threads on the same device restore in whatever
// order the threads leave their scopes.
class AllocatorGuard {
 public:
  explicit AllocatorGuard(Allocator* a, DeviceType d = DeviceType::CPU) noexcept
      : device_(d), previous_(AllocatorRegistry::set(d, a)) {}
  ~AllocatorGuard() { AllocatorRegistry::set(device_, previous_); }
  AllocatorGuard(const AllocatorGuard&) = delete;
  AllocatorGuard& operator=(const AllocatorGuard&) = delete;
  Allocator* previous() const noexcept { return previous_; }

 private:
  DeviceType device_;
  Allocator* previous_;
};

}  // namespace ammalloc

#endif  // AMMALLOC_ALLOCATOR_H

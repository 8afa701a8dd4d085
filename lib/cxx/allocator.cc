// The Allocator base class, AllocationError, the two process-wide allocator
// instances and the AllocatorRegistry.
//
// Owns: the instances (constant-initialised, never destroyed, so a DataPtr or a
// registry lookup is valid during static initialisation and at exit) and the
// registry slots (one std::atomic<Allocator*> per device; no lock).
// Invariant: the CPU slot is never null (nullptr means "the default").
// Allocates nothing; the only heap use is the exception object of a throw.
#include "ammalloc/allocator.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "ammalloc/ammalloc.h"
#include "internal.h"

namespace ammalloc {

// ---- helpers ---------------------------------------------------------------------
namespace detail {

void fatal(const char* msg) noexcept {
  static const char kPrefix[] = "ammalloc: ";
  // Best effort: a short write to stderr is all we can do before aborting.
  (void)!::write(2, kPrefix, sizeof kPrefix - 1);
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, "\n", 1);
  // raise + _exit rather than abort(): the same two calls the core uses, so the
  // libraries' undefined symbols stay on test/layout/allowed_undefined.txt.
  ::raise(SIGABRT);
  ::_exit(134);
}

void throw_allocation_error(std::size_t size, std::size_t alignment, const char* allocator_name) {
  throw AllocationError(size, alignment, allocator_name);
}

namespace {

// Appends s to buf[*pos..cap-1), always leaving room for the NUL.
void append(char* buf, std::size_t cap, std::size_t* pos, const char* s) noexcept {
  while (*s != '\0' && *pos + 1 < cap) buf[(*pos)++] = *s++;
  buf[*pos] = '\0';
}

void append_u64(char* buf, std::size_t cap, std::size_t* pos, unsigned long long v) noexcept {
  char digits[24];  // 2^64 has 20 decimal digits
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  char out[24];
  for (int i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
  append(buf, cap, pos, out);
}

}  // namespace
}  // namespace detail

const char* device_type_name(DeviceType d) noexcept {
  switch (d) {
    case DeviceType::CPU:
      return "cpu";
    case DeviceType::CUDA:
      return "cuda";
    case DeviceType::HIP:
      return "hip";
    case DeviceType::NPU:
      return "npu";
  }
  return "unknown";
}

// ---- AllocationError ---------------------------------------------------------------
AllocationError::AllocationError(std::size_t size, std::size_t alignment, const char* allocator_name) noexcept
    : size_(size), alignment_(alignment), allocator_(allocator_name != nullptr ? allocator_name : "allocator") {
  std::size_t pos = 0;
  msg_[0] = '\0';
  detail::append(msg_, sizeof msg_, &pos, "ammalloc: ");
  detail::append(msg_, sizeof msg_, &pos, allocator_);
  detail::append(msg_, sizeof msg_, &pos, " failed to allocate ");
  detail::append_u64(msg_, sizeof msg_, &pos, size);
  detail::append(msg_, sizeof msg_, &pos, " bytes (alignment ");
  detail::append_u64(msg_, sizeof msg_, &pos, alignment);
  detail::append(msg_, sizeof msg_, &pos, ")");
}

// Out of line: the key function, so the vtable and typeinfo are emitted (and
// exported) once, here, and catch clauses in other modules match.
AllocationError::~AllocationError() = default;

const char* AllocationError::what() const noexcept { return msg_; }

// ---- class-specific new/delete -----------------------------------------------
// The deleting destructors of these polymorphic classes are emitted here and
// would otherwise reference the global operator delete, which an ammalloc
// library must not import (test/layout checks undefined symbols). am_new loops over the new-handler and throws std::bad_alloc
// like the global operator new.
void* Allocator::operator new(std::size_t n) { return ::am_new(n, 0); }
void* Allocator::operator new(std::size_t n, std::align_val_t a) { return ::am_new(n, static_cast<std::size_t>(a)); }
void Allocator::operator delete(void* p) noexcept { ::am_free(p); }
void Allocator::operator delete(void* p, std::align_val_t) noexcept { ::am_free(p); }
void* AllocationError::operator new(std::size_t n) { return ::am_new(n, 0); }
void AllocationError::operator delete(void* p) noexcept { ::am_free(p); }

// ---- Allocator ---------------------------------------------------------------------
Allocator::~Allocator() = default;

void* Allocator::raw_allocate(std::size_t nbytes) {
  if (raw_deleter() == nullptr) detail::fatal("raw_allocate() on an allocator without raw_deleter()");
  DataPtr p = allocate(nbytes);
  if (p.get() != p.get_context()) detail::fatal("raw_allocate(): the allocator's context differs from its data");
  return p.release_context();
}

void Allocator::raw_deallocate(void* ptr) {
  DeleterFnPtr d = raw_deleter();
  if (d == nullptr) detail::fatal("raw_deallocate() on an allocator without raw_deleter()");
  if (ptr != nullptr) d(ptr);
}

void Allocator::copy_data(void* dst, const void* src, std::size_t nbytes) const {
  // memcpy with a null pointer is undefined even for 0 bytes.
  if (nbytes != 0) std::memcpy(dst, src, nbytes);
}

// ---- the instances and the registry --------------------------------------------
// detail_access is a friend of both allocator classes (their constructors are
// private so that nobody creates a second instance whose counters would be
// shared silently). The unions have an empty destructor: never destroyed.
struct detail_access {
  union Cpu {
    constexpr Cpu() noexcept : a() {}
    ~Cpu() {}
    CPUAllocator a;
  };
  union Am {
    constexpr Am() noexcept : a() {}
    ~Am() {}
    AmmallocAllocator a;
  };
  static Cpu cpu;
  static Am am;
};

constinit detail_access::Cpu detail_access::cpu;
constinit detail_access::Am detail_access::am;

CPUAllocator& cpu_allocator() noexcept { return detail_access::cpu.a; }
AmmallocAllocator& ammalloc_allocator() noexcept { return detail_access::am.a; }

namespace {

// kMaxDeviceTypes when d is out of range.
constexpr std::size_t slot_index(DeviceType d) noexcept {
  const auto i = static_cast<std::size_t>(static_cast<std::uint8_t>(d));
  return i < kMaxDeviceTypes ? i : kMaxDeviceTypes;
}

// Constant-initialised: the CPU slot holds the default before any code runs.
constinit std::atomic<Allocator*> g_slots[kMaxDeviceTypes] = {&detail_access::cpu.a};

}  // namespace

Allocator* AllocatorRegistry::get(DeviceType d) noexcept {
  // acquire pairs with the release in set(): a thread that sees a newly
  // registered allocator also sees how it was set up.
  const std::size_t i = slot_index(d);
  if (i == kMaxDeviceTypes) return nullptr;
  return g_slots[i].load(std::memory_order_acquire);
}

Allocator* AllocatorRegistry::set(DeviceType d, Allocator* a) noexcept {
  const std::size_t i = slot_index(d);
  if (i == kMaxDeviceTypes) detail::fatal("AllocatorRegistry::set(): device type out of range");
  if (a == nullptr && d == DeviceType::CPU) a = &detail_access::cpu.a;
  return g_slots[i].exchange(a, std::memory_order_acq_rel);
}

}  // namespace ammalloc

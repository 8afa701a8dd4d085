// operator new's failure path: the new-handler loop, std::bad_alloc.
//
// The only file of the core compiled with exceptions. Throwing allocates the
// exception object through __cxa_allocate_exception (libstdc++ has an emergency
// pool for exactly this case), outside every allocator lock.
//
// Every reference to the C++ runtime is weak (the .weak directives below), so
// that libammalloc.so does not need libstdc++: a C program that preloads it
// does not map libstdc++ and libm (about 1 MiB of resident memory). A C++
// program has libstdc++ loaded anyway, and the loader binds these references
// to it. Only a process with no C++ runtime at all can see them null; nothing
// there calls operator new, but if something did and memory ran out, ammalloc
// says so and aborts instead of throwing.
#include <new>

#include "front/alloc_fast.h"
#include "ammalloc/ammalloc.h"
#include "base/log.h"

// The runtime entry points and std::bad_alloc's type info, vtable and
// destructor that `throw std::bad_alloc()` and `catch (...)` refer to.
asm(".weak __cxa_allocate_exception\n\t.weak __cxa_throw\n\t.weak __cxa_begin_catch\n\t"
    ".weak __cxa_end_catch\n\t.weak __gxx_personality_v0\n\t.weak _ZTISt9bad_alloc\n\t"
    ".weak _ZTVSt9bad_alloc\n\t.weak _ZNSt9bad_allocD1Ev\n\t.weak _ZSt15get_new_handlerv");
extern "C" void* __cxa_allocate_exception(size_t) noexcept __attribute__((weak));

namespace am {

namespace {
bool cxx_runtime_present() { return &__cxa_allocate_exception != nullptr; }
}  // namespace

void* new_slow(size_t size, size_t align, bool nothrow, Api api) {
  for (;;) {
    void* p = align > kDefaultAlign ? alloc_aligned(size, align, api) : alloc_fast(size, api);
    if (p != nullptr) return p;
    if (!cxx_runtime_present()) {
      if (nothrow) return nullptr;
      fatal("operator new: out of memory, and no C++ runtime (libstdc++) to throw std::bad_alloc");
    }
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

}  // namespace am

extern "C" {
AM_EXPORT void* am_new(size_t size, size_t alignment) { return am::new_slow(size, alignment, false, AM_API_NEW); }
AM_EXPORT void* am_new_nothrow(size_t size, size_t alignment) {
  return am::new_slow(size, alignment, true, AM_API_NEW);
}
}

// operator new's failure path: the new-handler loop, std::bad_alloc.
//
// The only file of the core compiled with exceptions. Throwing allocates the
// exception object through __cxa_allocate_exception (libstdc++ has an emergency
// pool for exactly this case), outside every allocator lock.
#include <new>

#include "alloc_fast.h"
#include "ammalloc/ammalloc.h"

namespace am {

void* new_slow(size_t size, size_t align, bool nothrow, Api api) {
  for (;;) {
    void* p = align > kDefaultAlign ? alloc_aligned(size, align, api) : alloc_fast(size, api);
    if (p != nullptr) return p;
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

// The C++ Allocator API from an installed ammalloc.
#include <ammalloc/allocator.h>
#include <ammalloc/ammalloc.h>

#include <cstdio>

int main() {
  ammalloc::Allocator& a = ammalloc::ammalloc_allocator();
  ammalloc::DataPtr p = a.allocate(4096);
  bool ok = p.get() != nullptr && reinterpret_cast<uintptr_t>(p.get()) % 64 == 0;
  std::printf("use_cxx %s %s\n", am_version(), ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

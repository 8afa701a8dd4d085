// Text output without allocating: a fixed buffer formatter and the fatal-error path.
//
// Owns: TextBuffer (append strings and numbers into a caller's buffer, counting
// the length it would need past the end, like snprintf), am::log_warning and
// am::fatal. All output goes through write(2) in lib/os; nothing here allocates
// or takes a lock, so it is safe inside the allocator and in signal handlers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/attributes.h"

namespace am {

class TextBuffer {
 public:
  TextBuffer(char* buf, size_t cap) : buf_(buf), cap_(cap) { terminate(); }

  TextBuffer& str(const char* s);
  TextBuffer& chars(const char* s, size_t n);
  TextBuffer& u64(uint64_t v);
  // Right-aligned in a field of `width` characters.
  TextBuffer& u64w(uint64_t v, int width);
  TextBuffer& i64(int64_t v);
  TextBuffer& hex(uint64_t v);  // 0x-prefixed
  // v/div with `decimals` digits after the point (e.g. MiB with 1 decimal).
  TextBuffer& fixed(uint64_t v, uint64_t div, int decimals);
  TextBuffer& ch(char c) { return chars(&c, 1); }

  // Bytes the text needs (may exceed the capacity; then the text is truncated).
  size_t needed() const { return len_; }
  const char* data() const { return buf_; }
  // Bytes actually held in the buffer (<= capacity - 1).
  size_t held() const { return len_ < cap_ ? len_ : (cap_ ? cap_ - 1 : 0); }

 private:
  void terminate();
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
};

// "ammalloc: warning: <msg>\n" on stderr.
void log_warning(const char* msg);
// "ammalloc: <msg>\n" on stderr, then abort(). Never returns.
AM_NORETURN void fatal(const char* msg);
// "ammalloc: <function>(): invalid pointer 0x...\n", then abort().
AM_NORETURN void fatal_invalid_pointer(const char* function, const void* ptr);
// "ammalloc: <function>(): double free of 0x...\n", then abort().
AM_NORETURN void fatal_double_free(const char* function, const void* ptr);
// "ammalloc: <function>(): corrupted free list at 0x...\n", then abort() (a
// hardened pop found a free object overwritten: use after free).
AM_NORETURN void fatal_corrupted_list(const char* function, const void* ptr);

}  // namespace am

// Checked in every build: an allocator that continues after breaking an
// invariant corrupts memory silently; aborting with a line is always better.
#define AM_CHECK(cond)                                                         \
  do {                                                                         \
    if (AM_UNLIKELY(!(cond))) ::am::fatal("check failed: " #cond " at " __FILE__); \
  } while (0)

#ifdef AM_DEBUG
#define AM_DCHECK(cond) AM_CHECK(cond)
#else
#define AM_DCHECK(cond) \
  do {                  \
  } while (0)
#endif

// Implementation of the allocation-free text formatter and fatal paths.
#include "base/log.h"

#include "os/os.h"

namespace am {

void TextBuffer::terminate() {
  if (cap_ == 0) return;
  buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
}

TextBuffer& TextBuffer::chars(const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (len_ + 1 < cap_) buf_[len_] = s[i];
    ++len_;
  }
  terminate();
  return *this;
}

TextBuffer& TextBuffer::str(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return chars(s, n);
}

TextBuffer& TextBuffer::u64(uint64_t v) { return u64w(v, 0); }

TextBuffer& TextBuffer::u64w(uint64_t v, int width) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  for (int i = n; i < width; ++i) ch(' ');
  while (n) ch(tmp[--n]);
  return *this;
}

TextBuffer& TextBuffer::i64(int64_t v) {
  if (v < 0) {
    ch('-');
    return u64(static_cast<uint64_t>(-(v + 1)) + 1);
  }
  return u64(static_cast<uint64_t>(v));
}

TextBuffer& TextBuffer::hex(uint64_t v) {
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  str("0x");
  while (n) ch(tmp[--n]);
  return *this;
}

TextBuffer& TextBuffer::fixed(uint64_t v, uint64_t div, int decimals) {
  uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  // Round half up at the last decimal.
  unsigned __int128 scaled = (static_cast<unsigned __int128>(v) * scale + div / 2) / div;
  u64(static_cast<uint64_t>(scaled / scale));
  if (decimals > 0) {
    ch('.');
    uint64_t frac = static_cast<uint64_t>(scaled % scale);
    char tmp[20];
    for (int i = decimals - 1; i >= 0; --i) {
      tmp[i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    chars(tmp, static_cast<size_t>(decimals));
  }
  return *this;
}

static void write_line(TextBuffer& t) { os::write_all(2, t.data(), t.held()); }

void log_warning(const char* msg) {
  char buf[512];
  TextBuffer t(buf, sizeof buf);
  t.str("ammalloc: warning: ").str(msg).ch('\n');
  write_line(t);
}

void fatal(const char* msg) {
  char buf[512];
  TextBuffer t(buf, sizeof buf);
  t.str("ammalloc: ").str(msg).ch('\n');
  write_line(t);
  os::abort_process();
}

static AM_NORETURN void fatal_pointer(const char* function, const char* what, const void* ptr) {
  char buf[256];
  TextBuffer t(buf, sizeof buf);
  t.str("ammalloc: ").str(function).str("(): ").str(what).ch(' ');
  t.hex(reinterpret_cast<uintptr_t>(ptr)).ch('\n');
  write_line(t);
  os::abort_process();
}

void fatal_invalid_pointer(const char* function, const void* ptr) {
  fatal_pointer(function, "invalid pointer", ptr);
}

void fatal_double_free(const char* function, const void* ptr) {
  fatal_pointer(function, "double free of", ptr);
}

void fatal_corrupted_list(const char* function, const void* ptr) {
  fatal_pointer(function, "corrupted free list at", ptr);
}

}  // namespace am

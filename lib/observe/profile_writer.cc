// Heap-profile text output (see profile_writer.h).
#include "observe/profile_writer.h"
#include "observe/stacktrace.h"

#include "base/log.h"
#include "os/os.h"
#include "os/proc.h"

namespace am {

void ProfileSink::terminate() {
  if (fd_ < 0 && cap_ > 0) buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
}

void ProfileSink::put(const char* s, size_t n) {
  total_ += n;
  if (fd_ < 0) {
    for (size_t i = 0; i < n && len_ + 1 < cap_; ++i) buf_[len_++] = s[i];
    terminate();
    return;
  }
  while (n > 0) {
    if (len_ == cap_) flush();
    size_t k = cap_ - len_ < n ? cap_ - len_ : n;
    __builtin_memcpy(buf_ + len_, s, k);
    len_ += k;
    s += k;
    n -= k;
  }
}

void ProfileSink::flush() {
  if (fd_ < 0 || len_ == 0) return;
  os::write_all(fd_, buf_, len_);
  len_ = 0;
}

namespace {

void put_text(ProfileSink& out, const TextBuffer& t) { out.put(t.data(), t.held()); }

void counts(TextBuffer& t, uint64_t n1, uint64_t b1, uint64_t n2, uint64_t b2) {
  t.u64w(n1, 6).str(": ").u64w(b1, 8).str(" [").u64w(n2, 6).str(": ").u64w(b2, 8).str("] @");
}

}  // namespace

void profile_header(ProfileSink& out, uint64_t inuse_objs, uint64_t inuse_bytes, uint64_t alloc_objs,
                    uint64_t alloc_bytes, const char* type) {
  char buf[256];
  TextBuffer t(buf, sizeof buf);
  t.str("heap profile: ");
  counts(t, inuse_objs, inuse_bytes, alloc_objs, alloc_bytes);
  t.ch(' ').str(type).ch('\n');
  put_text(out, t);
}

void profile_line(ProfileSink& out, uint64_t inuse_objs, uint64_t inuse_bytes, uint64_t alloc_objs,
                  uint64_t alloc_bytes, void* const* pcs, int depth) {
  // kMaxStackDepth (256) frames of " 0x" + 16 digits, plus the counts: < 5.3 KiB.
  char buf[kMaxStackDepth * 20 + 128];
  TextBuffer t(buf, sizeof buf);
  counts(t, inuse_objs, inuse_bytes, alloc_objs, alloc_bytes);
  for (int i = 0; i < depth && i < kMaxStackDepth; ++i) t.ch(' ').hex(reinterpret_cast<uintptr_t>(pcs[i]));
  t.ch('\n');
  put_text(out, t);
}

void profile_maps(ProfileSink& out) {
  static const char kTitle[] = "\nMAPPED_LIBRARIES:\n";
  out.put(kTitle, sizeof kTitle - 1);
  char buf[8192];  // holds any line whole (paths are at most PATH_MAX)
  os::for_each_mapping(buf, sizeof buf, [](const os::MapsLine& m, void* arg) {
    auto& sink = *static_cast<ProfileSink*>(arg);
    sink.put(m.line, m.line_len);
    sink.put("\n", 1);
    return true;
  }, &out);
}

bool profile_file_name(char* buf, size_t len, const char* prefix, int pid, int seq, const char* tag) {
  TextBuffer t(buf, len);
  t.str(prefix).ch('.').u64(static_cast<uint64_t>(pid)).ch('.');
  if (tag != nullptr) {
    t.str(tag);
  } else {
    char digits[12];
    TextBuffer d(digits, sizeof digits);
    d.u64(static_cast<uint64_t>(seq));
    for (size_t i = d.held(); i < 4; ++i) t.ch('0');
    t.str(digits);
  }
  t.str(".heap");
  return t.needed() < len;
}

}  // namespace am

// The /proc readers (see proc.h).
#include "os/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "os/os.h"
#include "os/nocancel.h"

namespace am::os {
namespace {

// Streams a text file through the caller's buffer and calls fn once per line,
// without the newline and NUL-terminated. A line longer than len-1 bytes is
// cut to its first len-1. fn returns false to stop early. False if the file
// could not be opened.
template <typename Fn>
bool for_each_line(const char* path, char* buf, size_t len, Fn fn) {
  if (len < 2) return false;
  int fd = nocancel_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return false;
  size_t have = 0;        // bytes of the current (unfinished) line in buf
  bool skipping = false;  // the current line overflowed: drop until its newline
  bool go = true;
  for (;;) {
    ssize_t n = nocancel_read(fd, buf + have, len - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t end = have + static_cast<size_t>(n), start = 0;
    for (size_t i = have; i < end && go; ++i) {
      if (buf[i] != '\n') continue;
      buf[i] = '\0';
      if (!skipping) go = fn(buf + start, i - start);
      skipping = false;
      start = i + 1;
    }
    if (!go) break;
    // Keep the unfinished tail at the front; a line filling the whole buffer
    // is handed over cut, and the rest of it skipped.
    have = end - start;
    if (start > 0 && have > 0) memmove(buf, buf + start, have);
    if (have == len - 1) {
      buf[have] = '\0';
      if (!skipping) go = fn(buf, have);
      skipping = true;
      have = 0;
      if (!go) break;
    }
  }
  if (go && have > 0 && !skipping) {
    buf[have] = '\0';
    fn(buf, have);
  }
  nocancel_close(fd);
  return true;
}

int hex_digit(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

// Hex digits at *p; advances *p past them.
uintptr_t parse_hex(const char** p) {
  uintptr_t v = 0;
  for (int d; (d = hex_digit(**p)) >= 0; ++*p) v = v * 16 + static_cast<uintptr_t>(d);
  return v;
}

// A decimal after optional blanks; -1 if there is none.
long parse_decimal(const char* p) {
  while (*p == ' ' || *p == '\t') ++p;
  if (*p < '0' || *p > '9') return -1;
  long v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}

// "Name:" at the start of line: the text after the colon, else nullptr.
const char* field_value(const char* line, const char* name) {
  while (*name && *line == *name) ++line, ++name;
  return *name == '\0' && *line == ':' ? line + 1 : nullptr;
}

// "Name:   1234 kB" -> bytes (0 when it is not that field).
size_t kb_field_bytes(const char* line, const char* name) {
  const char* v = field_value(line, name);
  long kb = v ? parse_decimal(v) : -1;
  return kb > 0 ? static_cast<size_t>(kb) * 1024 : 0;
}

}  // namespace

bool parse_maps_line(const char* line, MapsLine* m) {
  const char* p = line;
  if (hex_digit(*p) < 0) return false;  // smaps field lines start with a capital
  m->start = parse_hex(&p);
  if (*p != '-') return false;
  ++p;
  m->end = parse_hex(&p);
  while (*p == ' ') ++p;
  for (int i = 0; i < 4; ++i) m->perms[i] = *p ? *p++ : '-';
  m->perms[4] = '\0';
  while (*p == ' ') ++p;
  m->offset = parse_hex(&p);
  for (int field = 0; field < 2 && *p; ++field) {  // dev, inode
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
  }
  while (*p == ' ') ++p;
  m->path = p;
  m->line = line;
  m->line_len = strlen(line);
  return true;
}

bool for_each_mapping(char* buf, size_t len, bool (*fn)(const MapsLine& m, void* ctx), void* ctx) {
  return for_each_line("/proc/self/maps", buf, len, [&](const char* line, size_t) {
    MapsLine m;
    return !parse_maps_line(line, &m) || fn(m, ctx);
  });
}

bool for_each_smaps_record(char* buf, size_t len, bool (*fn)(const SmapsRecord& r, void* ctx), void* ctx) {
  SmapsRecord r;
  bool open = false;  // a record has started and not been handed over
  bool go = true;
  bool ok = for_each_line("/proc/self/smaps", buf, len, [&](const char* line, size_t) {
    MapsLine m;
    if (parse_maps_line(line, &m)) {
      if (open && !(go = fn(r, ctx))) return false;
      r = SmapsRecord{m.start, m.end, 0, 0};
      open = true;
    } else if (open) {
      r.rss += kb_field_bytes(line, "Rss");
      r.anon_huge += kb_field_bytes(line, "AnonHugePages");
    }
    return true;
  });
  if (ok && go && open) fn(r, ctx);
  return ok;
}

long status_field(const char* name) {
  char buf[512];
  long value = -1;
  for_each_line("/proc/self/status", buf, sizeof buf, [&](const char* line, size_t) {
    const char* v = field_value(line, name);
    if (v == nullptr) return true;
    value = parse_decimal(v);
    return false;
  });
  return value;
}

long read_small_file(const char* path, char* buf, size_t len) {
  if (len == 0) return -1;
  int fd = nocancel_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < len) {
    ssize_t n = nocancel_read(fd, buf + got, len - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  nocancel_close(fd);
  buf[got] = '\0';
  return static_cast<long>(got);
}

bool only_live_thread() {
  long threads = status_field("Threads");
  if (threads == 1) return true;
  // Two: us and a leader that called pthread_exit (a zombie until the group ends).
  int pid = process_id();
  if (threads != 2 || thread_id() == pid) return false;
  char path[64] = "/proc/self/task/";
  char digits[16];
  int n = 0;
  for (unsigned v = static_cast<unsigned>(pid); n == 0 || v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  size_t len = strlen(path);
  while (n > 0) path[len++] = digits[--n];
  memcpy(path + len, "/stat", 6);
  char buf[2048];
  if (read_small_file(path, buf, sizeof buf) <= 0) return false;
  const char* close_paren = strrchr(buf, ')');  // the command name may hold ')'
  return close_paren != nullptr && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

size_t resident_bytes() {
  char buf[128];
  if (read_small_file("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
  const char* p = buf;
  while (*p && *p != ' ') ++p;  // skip total size
  long pages = parse_decimal(p);
  return pages > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(system_page_size()) : 0;
}

}  // namespace am::os

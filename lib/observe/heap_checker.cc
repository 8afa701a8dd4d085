// Heap leak checker: live-block table, conservative mark, report (see heap_checker.h).
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <stdlib.h>

#include <atomic>
#include <cstdint>

#include "base/attributes.h"
#include "base/log.h"
#include "base/spinlock.h"
#include "observe/heap_checker.h"
#include "observe/hooks.h"
#include "core/options.h"
#include "os/files.h"
#include "os/os.h"
#include "os/proc.h"
#include "core/pagemap.h"
#include "observe/profile_writer.h"
#include "observe/profiler.h"
#include "observe/stacktrace.h"

// The scan reads memory the program owns (redzones, other allocators' data):
// never instrumented.
#define AM_NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))

namespace am {
namespace {

constexpr size_t kStripes = 64;
constexpr size_t kHeadsPerStripe = size_t{1} << 14;  // 1M heads: 8 MiB, touched as used
constexpr size_t kChunkBytes = 256 * 1024;           // entries come 8K at a time
constexpr size_t kMaxOwnRanges = 1 << 14;            // 4 GiB of entries
// A mapping larger than this is a reservation (sanitizer shadow, another
// runtime's arena), not data to scan.
constexpr size_t kMaxScanMapping = size_t{16} << 30;
constexpr int kReportStacks = 10;
constexpr int kReportFrames = 16;

struct Entry {
  Entry* next;
  uintptr_t ptr;
  size_t size;
  const StackTrace* stack;
};

struct alignas(64) Stripe {
  SpinLock lock{LockRank::kHeapCheck};
  Entry** heads = nullptr;
  Entry* free = nullptr;
  char* cursor = nullptr;
  char* limit = nullptr;
  size_t count = 0;
};

struct Range {
  uintptr_t lo = 0, hi = 0;  // initialisers: constinit arrays of it are constant-initialised
};

constinit Stripe g_stripes[kStripes];
constinit Range g_own[kMaxOwnRanges];
constinit std::atomic<size_t> g_own_count{0};
constinit std::atomic<bool> g_on{false};
constinit thread_local bool t_recording AM_TLS_IE = false;

// Blocks allocated while the checker was on that it could not record (the OS
// refused memory for an entry chunk): unknown memory to the check, like the
// blocks allocated before it started.
constinit std::atomic<size_t> g_unrecorded{0};

// Memory for this module's tables, remembered so the scan skips it (it holds
// the addresses of every live block). nullptr if the OS refused.
void* own_map(size_t bytes) {
  void* p = os::map_aligned(bytes, 4096);
  if (p == nullptr) return nullptr;
  size_t i = g_own_count.load(std::memory_order_relaxed);
  if (i < kMaxOwnRanges) {
    g_own[i] = {reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(p) + bytes};
    g_own_count.store(i + 1, std::memory_order_release);
  }
  return p;
}

uint64_t addr_hash(uintptr_t p) { return (static_cast<uint64_t>(p) >> 4) * 0x9e3779b97f4a7c15ull; }
Stripe& stripe_of(uintptr_t p) { return g_stripes[addr_hash(p) >> 58]; }
Entry*& head_of(Stripe& s, uintptr_t p) { return s.heads[(addr_hash(p) >> 20) & (kHeadsPerStripe - 1)]; }

Entry* new_entry_locked(Stripe& s) {
  if (Entry* e = s.free) {
    s.free = e->next;
    return e;
  }
  if (s.cursor == nullptr || s.limit - s.cursor < static_cast<ptrdiff_t>(sizeof(Entry))) {
    char* chunk = static_cast<char*>(own_map(kChunkBytes));
    if (chunk == nullptr) return nullptr;  // out of memory: the caller records nothing
    s.cursor = chunk;
    s.limit = s.cursor + kChunkBytes;
  }
  auto* e = reinterpret_cast<Entry*>(s.cursor);
  s.cursor += sizeof(Entry);
  return e;
}

// ---- sorting without allocating ------------------------------------------------

template <typename T, typename Less>
void sift_down(T* a, size_t root, size_t n, Less less) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && less(a[child], a[child + 1])) ++child;
    if (!less(a[root], a[child])) return;
    T t = a[root];
    a[root] = a[child];
    a[child] = t;
    root = child;
  }
}

template <typename T, typename Less>
void heap_sort(T* a, size_t n, Less less) {
  if (n < 2) return;
  for (size_t i = n / 2; i-- > 0;) sift_down(a, i, n, less);
  for (size_t end = n - 1; end > 0; --end) {
    T t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift_down(a, 0, end, less);
  }
}

// ---- the check -----------------------------------------------------------------

struct Block {
  uintptr_t ptr;
  size_t size;
  const StackTrace* stack;
  uint64_t marked;
};

struct Group {
  const StackTrace* stack;
  size_t bytes;
  size_t count;
};

struct Check {
  Block* blocks = nullptr;
  size_t n = 0;
  uintptr_t min = 0, max = 0;  // [lowest block start, highest block end)
  uint32_t* work = nullptr;
  size_t work_len = 0;
  Range tmp[4] = {};  // this check's own arrays
  int ntmp = 0;
  uintptr_t sp = 0;
};

void* tmp_map(Check& c, size_t bytes) {
  bytes = (bytes + 4095) & ~size_t{4095};
  void* p = os::map_aligned(bytes, 4096);
  if (p == nullptr) return nullptr;
  if (c.ntmp < 4) c.tmp[c.ntmp++] = {reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(p) + bytes};
  return p;
}

void tmp_unmap_all(Check& c) {
  for (int i = 0; i < c.ntmp; ++i) os::unmap(reinterpret_cast<void*>(c.tmp[i].lo), c.tmp[i].hi - c.tmp[i].lo);
  c.ntmp = 0;
}

bool snapshot(Check& c) {
  for (Stripe& s : g_stripes) s.lock.lock_unchecked();
  size_t n = 0;
  for (Stripe& s : g_stripes) n += s.count;
  c.blocks = n ? static_cast<Block*>(tmp_map(c, n * sizeof(Block))) : nullptr;
  c.work = n ? static_cast<uint32_t*>(tmp_map(c, n * sizeof(uint32_t))) : nullptr;
  const bool refused = n && (c.blocks == nullptr || c.work == nullptr);
  if (refused) n = 0;
  size_t k = 0;
  for (Stripe& s : g_stripes) {
    if (s.heads == nullptr) continue;
    for (size_t h = 0; h < kHeadsPerStripe && k < n; ++h)
      for (Entry* e = s.heads[h]; e && k < n; e = e->next) c.blocks[k++] = {e->ptr, e->size, e->stack, 0};
  }
  for (size_t i = kStripes; i-- > 0;) g_stripes[i].lock.unlock_unchecked();
  if (refused) {
    log_warning("leak check: out of memory for the check's arrays; nothing was checked");
    return false;
  }
  c.n = k;
  heap_sort(c.blocks, c.n, [](const Block& a, const Block& b) { return a.ptr < b.ptr; });
  if (c.n) {
    c.min = c.blocks[0].ptr;
    for (size_t i = 0; i < c.n; ++i) {
      uintptr_t end = c.blocks[i].ptr + (c.blocks[i].size ? c.blocks[i].size : 1);
      if (end > c.max) c.max = end;
    }
  }
  return true;
}

// The block containing address w, if any (interior pointers count).
AM_NO_SANITIZE inline void mark_word(Check& c, uintptr_t w) {
  if (w < c.min || w >= c.max) return;
  size_t lo = 0, hi = c.n;  // first block with ptr > w
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c.blocks[mid].ptr <= w)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return;
  Block& b = c.blocks[lo - 1];
  if (w >= b.ptr + (b.size ? b.size : 1) || b.marked) return;
  b.marked = 1;
  c.work[c.work_len++] = static_cast<uint32_t>(&b - c.blocks);
}

AM_NO_SANITIZE void scan_words(Check& c, uintptr_t lo, uintptr_t hi) {
  lo = (lo + 7) & ~uintptr_t{7};
  for (uintptr_t p = lo; p + 8 <= hi; p += 8) mark_word(c, *reinterpret_cast<const volatile uintptr_t*>(p));
}

const Range* excluded(const Check& c, uintptr_t a) {
  for (int i = 0; i < c.ntmp; ++i)
    if (a >= c.tmp[i].lo && a < c.tmp[i].hi) return &c.tmp[i];
  size_t n = g_own_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    if (a >= g_own[i].lo && a < g_own[i].hi) return &g_own[i];
  return nullptr;
}

// A root mapping, page by page, skipping ammalloc's heap (span by span) and
// this module's memory.
AM_NO_SANITIZE void scan_mapping(Check& c, uintptr_t lo, uintptr_t hi) {
  uintptr_t a = lo;
  while (a < hi) {
    if (const Range* r = excluded(c, a)) {
      a = r->hi;
      continue;
    }
    Span* s = pagemap_span(a);
    if (s != nullptr && s->state != Span::kDead && s->contains_page(a >> kPageShift)) {
      a = s->start() + s->bytes();
      continue;
    }
    uintptr_t next = (a | 4095) + 1;
    scan_words(c, a, next < hi ? next : hi);
    a = next;
  }
}

// Every private writable mapping that is not a device, streamed from
// /proc/self/maps while it is scanned. The line buffer lives below this
// thread's scanned frames (and holds text, not pointers). False if the maps
// could not be read.
AM_NO_SANITIZE bool scan_roots(Check& c) {
  char buf[8192];
  return os::for_each_mapping(buf, sizeof buf, [](const os::MapsLine& m, void* arg) {
    auto& c = *static_cast<Check*>(arg);
    if (m.perms[0] != 'r' || m.perms[1] != 'w' || m.perms[3] != 'p') return true;
    const char* p = m.path;
    if (p[0] == '/' && p[1] == 'd' && p[2] == 'e' && p[3] == 'v' && p[4] == '/') return true;
    if (m.end - m.start > kMaxScanMapping) return true;
    uintptr_t lo = m.start;
    if (c.sp >= m.start && c.sp < m.end) lo = c.sp;  // this thread's stack: live frames only
    scan_mapping(c, lo, m.end);
    return true;
  }, &c);
}

AM_NO_SANITIZE void propagate(Check& c) {
  while (c.work_len > 0) {
    const Block& b = c.blocks[c.work[--c.work_len]];
    scan_words(c, b.ptr, b.ptr + b.size);
  }
}

// "0x7f... leak_here+0x11 (libfoo.so+0x1234)" for a return address: the
// function from the module's ELF symbol table (.symtab when the binary has
// it, else .dynsym: what google-pprof reads too, through libunwind's local
// accessor, which maps the file and does not allocate), then module+offset,
// which stays exact where the binary is stripped.
void describe_pc(TextBuffer& t, const void* pc) {
  struct Find {
    TextBuffer* t;
    uintptr_t a;
  } f{&t, reinterpret_cast<uintptr_t>(pc)};
  t.hex(f.a);
  {
    char name[256];
    unw_word_t off = 0;
    unw_accessors_t* acc = unw_get_accessors(unw_local_addr_space);
    // A return address points after the call: look up the byte before it.
    if (acc != nullptr && acc->get_proc_name != nullptr &&
        acc->get_proc_name(unw_local_addr_space, static_cast<unw_word_t>(f.a - 1), name, sizeof name, &off,
                           nullptr) == 0 &&
        name[0] != '\0')
      t.ch(' ').str(name).str("+").hex(off + 1);
  }
  char buf[8192];
  os::for_each_mapping(buf, sizeof buf, [](const os::MapsLine& m, void* arg) {
    auto& f = *static_cast<Find*>(arg);
    if (f.a < m.start || f.a >= m.end || m.anonymous()) return true;
    const char* base = m.path;
    for (const char* q = m.path; *q; ++q)
      if (*q == '/') base = q + 1;
    f.t->str(" (").str(base).str("+").hex(f.a - m.start + m.offset).ch(')');
    return false;
  }, &f);
}

// The leak profile's prefix, fixed when the checker starts (init, before
// main): AMMALLOC_HEAP_PROFILE when set, else "ammalloc" in the working
// directory of that moment; a relative prefix is made absolute then too. Copied,
// not kept as a pointer into environ: a program that rewrites its environment
// or its process title (the strings' memory) or changes directory later must
// not redirect the file.
constexpr size_t kLeakPrefixMax = 1024;
constinit char g_leak_prefix[kLeakPrefixMax] = {};

void fix_leak_prefix() {
  const char* prefix = option_string(kOptHeapProfile);
  if (prefix == nullptr || *prefix == '\0') prefix = "ammalloc";
  TextBuffer t(g_leak_prefix, sizeof g_leak_prefix);
  if (prefix[0] != '/') {
    char cwd[kLeakPrefixMax];
    if (os::current_dir(cwd, sizeof cwd) > 0) t.str(cwd).ch('/');
  }
  t.str(prefix);
}

void leak_file_name(char* buf, size_t len) {
  if (g_leak_prefix[0] == '\0') fix_leak_prefix();
  profile_file_name(buf, len, g_leak_prefix, os::process_id(), 0, "leaks");
}

// False (and nothing written) when the file cannot be created.
bool write_leak_profile(const Group* groups, size_t ngroups, size_t bytes, size_t objects,
                        const char* name) {
  int fd = os::open_write(name);
  if (fd < 0) return false;
  static char chunk[16 * 1024];  // used only by the check, which runs once at a time
  ProfileSink out(fd, chunk, sizeof chunk);
  profile_header(out, objects, bytes, objects, bytes, "heapprofile");
  for (size_t i = 0; i < ngroups; ++i) {
    const StackTrace* st = groups[i].stack;
    if (st == nullptr || st->depth == 0) continue;
    profile_line(out, groups[i].count, groups[i].bytes, groups[i].count, groups[i].bytes, st->pcs(),
                 static_cast<int>(st->depth));
  }
  profile_maps(out);
  out.flush();
  os::close_fd(fd);
  return true;
}

void report(Check& c, size_t bytes, size_t objects) {
  // Leaked blocks grouped by stack, largest first (the work array is free now).
  size_t nleaks = 0;
  for (size_t i = 0; i < c.n; ++i)
    if (!c.blocks[i].marked) c.work[nleaks++] = static_cast<uint32_t>(i);
  const Block* blocks = c.blocks;
  heap_sort(c.work, nleaks, [blocks](uint32_t a, uint32_t b) { return blocks[a].stack < blocks[b].stack; });
  auto* groups = static_cast<Group*>(tmp_map(c, (nleaks ? nleaks : 1) * sizeof(Group)));
  size_t ngroups = 0;
  for (size_t i = 0; groups && i < nleaks; ++i) {
    const Block& b = c.blocks[c.work[i]];
    if (ngroups == 0 || groups[ngroups - 1].stack != b.stack) groups[ngroups++] = {b.stack, 0, 0};
    groups[ngroups - 1].bytes += b.size;
    groups[ngroups - 1].count += 1;
  }
  heap_sort(groups, ngroups, [](const Group& a, const Group& b) { return a.bytes > b.bytes; });

  char line[512];
  TextBuffer head(line, sizeof line);
  head.str("ammalloc: leak check: ").u64(bytes).str(" bytes in ").u64(objects).str(" objects\n");
  if (size_t lost = g_unrecorded.load(std::memory_order_relaxed)) {
    // Their contents were not scanned: what only they point to shows as leaked.
    head.str("ammalloc: leak check: ").u64(lost).str(" allocations were not recorded (out of memory for the "
                                                     "table): blocks reachable only through them are counted above\n");
  }
  os::write_all(2, head.data(), head.held());
  for (size_t g = 0; g < ngroups && g < static_cast<size_t>(kReportStacks); ++g) {
    TextBuffer t(line, sizeof line);
    t.str("ammalloc: leak of ").u64(groups[g].bytes).str(" bytes in ").u64(groups[g].count);
    t.str(groups[g].count == 1 ? " object" : " objects").str(" allocated from:\n");
    os::write_all(2, t.data(), t.held());
    const StackTrace* st = groups[g].stack;
    int depth = st ? static_cast<int>(st->depth) : 0;
    for (int f = 0; f < depth && f < kReportFrames; ++f) {
      TextBuffer fr(line, sizeof line);
      fr.str("    @ ");
      describe_pc(fr, st->pcs()[f]);
      fr.ch('\n');
      os::write_all(2, fr.data(), fr.held());
    }
  }
  char name[1200];
  leak_file_name(name, sizeof name);
  if (!write_leak_profile(groups, ngroups, bytes, objects, name)) {
    char msg[1400];
    TextBuffer m(msg, sizeof msg);
    m.str("leak check: cannot write the leak profile ").str(name);
    m.str(" (set AMMALLOC_HEAP_PROFILE to a writable prefix); the report above is all there is");
    log_warning(msg);
    return;
  }
  char exe[1024];
  if (os::self_exe_path(exe, sizeof exe) < 0) exe[0] = '\0';
  char cmd[2400];
  TextBuffer t(cmd, sizeof cmd);
  t.str("ammalloc: leak profile written to ").str(name).str("; symbolised stacks: google-pprof --text ");
  t.str(exe[0] ? exe : "<program>").ch(' ').str(name).ch('\n');
  os::write_all(2, t.data(), t.held());
}

AM_NOINLINE size_t check_body(const unw_context_t* regs, uintptr_t sp, size_t* objects, bool print) {
  Check c;
  c.sp = sp;
  size_t leaked = 0, count = 0;
  bool scanned = false;
  if (snapshot(c) && c.n > 0) {
    scan_words(c, reinterpret_cast<uintptr_t>(regs), reinterpret_cast<uintptr_t>(regs + 1));
    scanned = scan_roots(c);
  }
  if (scanned) {
    propagate(c);
    for (size_t i = 0; i < c.n; ++i) {
      if (c.blocks[i].marked) continue;
      leaked += c.blocks[i].size;
      ++count;
    }
    if (print && count > 0) {
      // Symbol lookups in the report may allocate (libunwind): not recorded.
      bool saved = t_recording;
      t_recording = true;
      report(c, leaked, count);
      t_recording = saved;
    }
  }
  tmp_unmap_all(c);
  if (objects) *objects = count;
  return leaked;
}

// The entry: registers first (callee-saved ones may hold the callers' only
// copy of a pointer), then the stack from this frame up.
AM_NOINLINE size_t check_entry(size_t* objects, bool print) {
  unw_context_t regs;
  unw_getcontext(&regs);
  uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  size_t r = check_body(&regs, sp, objects, print);
  __asm__ __volatile__("" ::"r"(&regs) : "memory");  // keep regs alive across the call
  return r;
}

void at_exit() {
  size_t objects = 0;
  size_t leaked = check_entry(&objects, true);
  int code = static_cast<int>(option(kOptHeapCheckExitCode));
  if (leaked > 0 && code != 0) os::exit_now(code);
}

// ---- recording: the checker's callbacks in the hook table ------------------------

// After every allocation (also those a malloc hook makes): the block and the
// stack that allocated it. In the entry section, like every frame between the
// program and the capture (hooks.h).
AM_NOINLINE AM_ENTRY_SECTION void on_post_alloc(void*, void* p, size_t size, am_api) {
  if (p == nullptr || !g_on.load(std::memory_order_relaxed) || t_recording) return;
  t_recording = true;  // libunwind's allocations during the capture are not recorded
  void* pcs[kMaxStackDepth];
  int depth = stacktrace_capture(pcs, stacktrace_depth());
  const StackTrace* st = profiler_intern_stack(pcs, depth);
  auto a = reinterpret_cast<uintptr_t>(p);
  Stripe& s = stripe_of(a);
  {
    LockGuard g(s.lock);
    Entry*& head = head_of(s, a);
    Entry* e = head;
    while (e && e->ptr != a) e = e->next;
    if (e == nullptr && (e = new_entry_locked(s)) != nullptr) {
      e->ptr = a;
      e->next = head;
      head = e;
      ++s.count;
    }
    if (e != nullptr) {
      e->size = size;
      e->stack = st;
    } else {
      g_unrecorded.fetch_add(1, std::memory_order_relaxed);
    }
  }
  t_recording = false;
}

// Before every free: the block is no longer live.
AM_ENTRY_SECTION void on_pre_free(void*, void* p, size_t, am_api) {
  if (!g_on.load(std::memory_order_relaxed)) return;
  auto a = reinterpret_cast<uintptr_t>(p);
  Stripe& s = stripe_of(a);
  LockGuard g(s.lock);
  for (Entry** link = &head_of(s, a); *link; link = &(*link)->next) {
    Entry* e = *link;
    if (e->ptr != a) continue;
    *link = e->next;
    e->next = s.free;
    s.free = e;
    --s.count;
    return;
  }
}

}  // namespace

void heap_checker_init() {
  if (option(kOptHeapCheck)) heap_checker_start();
}

void heap_checker_start() {
  if (g_on.load(std::memory_order_acquire)) return;
  stacktrace_init();
  fix_leak_prefix();
  auto* heads = static_cast<Entry**>(own_map(kStripes * kHeadsPerStripe * sizeof(Entry*)));
  if (heads == nullptr) {
    // The program runs on unchecked; a later heap_checker_start may try again.
    log_warning("heap checker: out of memory for its table; leaks are not checked");
    return;
  }
  for (size_t i = 0; i < kStripes; ++i) g_stripes[i].heads = heads + i * kHeadsPerStripe;
  g_on.store(true, std::memory_order_release);
  atexit(at_exit);
  am_hooks hooks{};
  hooks.post_alloc = on_post_alloc;
  hooks.pre_free = on_pre_free;
  if (!hooks_add_internal(hooks)) fatal("heap checker: no free observer slot");
}

bool heap_checker_on() { return g_on.load(std::memory_order_relaxed); }

void heap_checker_lock_for_fork() {
  for (Stripe& s : g_stripes) s.lock.lock_unchecked();
}

void heap_checker_unlock_after_fork(bool child) {
  for (size_t i = kStripes; i-- > 0;)
    child ? g_stripes[i].lock.reset_in_child() : g_stripes[i].lock.unlock_unchecked();
}

size_t heap_check_run(size_t* objects, bool print) {
  if (!heap_checker_on()) {
    if (objects) *objects = 0;
    return 0;
  }
  return check_entry(objects, print);
}

}  // namespace am

extern "C" AM_EXPORT size_t am_heap_leak_check(size_t* objects, int print) {
  return am::heap_check_run(objects, print != 0);
}

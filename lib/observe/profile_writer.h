// The gperftools heap-profile text format, written without allocating.
//
// Owns: the sink (a caller's buffer, or a file descriptor flushed from a fixed
// chunk), the header and bucket lines, the MAPPED_LIBRARIES section, and the
// file names. The format is what google-pprof's legacy heap reader parses:
//
//   heap profile: <inuse objs>: <inuse bytes> [<alloc objs>: <alloc bytes>] @ <type>
//   <inuse objs>: <inuse bytes> [<alloc objs>: <alloc bytes>] @ 0x<pc> 0x<pc> ...
//   ...
//   (blank line)
//   MAPPED_LIBRARIES:
//   <the contents of /proc/self/maps>
//
// <type> is `heap_v2/<period>` for sampled profiles (pprof scales each line by
// 1 / (1 - exp(-avg/period)), avg = bytes/objs of that line; the profiler's
// lines are per stack, so this is exact for a stack that allocates one size
// and otherwise an underestimate by at most half: each sample stands for
// between max(size, period) and size + period bytes, and the scaling is
// convex in the size) and `heapprofile` for exact ones (the leak checker's;
// no scaling). Stacks are return addresses, innermost
// first; pprof looks each up at pc - 1 (the call instruction).
// Locks: none; callers serialise use of a shared chunk.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am {

class ProfileSink {
 public:
  // Into a caller's buffer: NUL-terminated when cap > 0; needed() counts all.
  ProfileSink(char* buf, size_t cap) : buf_(buf), cap_(cap), fd_(-1) { terminate(); }
  // To fd, through chunk (flushed when full and by flush()).
  ProfileSink(int fd, char* chunk, size_t cap) : buf_(chunk), cap_(cap), fd_(fd) {}

  void put(const char* s, size_t n);
  void flush();
  size_t needed() const { return total_; }

 private:
  void terminate();
  char* buf_;
  size_t cap_;
  int fd_;
  size_t len_ = 0;
  size_t total_ = 0;
};

void profile_header(ProfileSink& out, uint64_t inuse_objs, uint64_t inuse_bytes, uint64_t alloc_objs,
                    uint64_t alloc_bytes, const char* type);
void profile_line(ProfileSink& out, uint64_t inuse_objs, uint64_t inuse_bytes, uint64_t alloc_objs,
                  uint64_t alloc_bytes, void* const* pcs, int depth);
// The blank line, MAPPED_LIBRARIES: and /proc/self/maps, line by line
// (os::for_each_mapping; 8 KiB of stack).
void profile_maps(ProfileSink& out);

// "<prefix>.<pid>.<seq, 4 digits>.heap" (or "<prefix>.<pid>.<tag>.heap" when
// tag is not NULL) into buf; false if it does not fit.
bool profile_file_name(char* buf, size_t len, const char* prefix, int pid, int seq, const char* tag);

}  // namespace am

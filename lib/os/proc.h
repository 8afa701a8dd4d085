// The one reader of /proc (and of small /sys files): the process's mappings
// (/proc/self/maps), their resident and huge-page sizes (/proc/self/smaps),
// fields of /proc/self/status, the resident set (/proc/self/statm) and the
// single-thread test that fork-time and exit-time code needs.
//
// Owns: the line streamer (a file read through the caller's buffer, one line at
// a time, never the whole file) and the parsers of the maps, smaps and status
// formats. Nothing else in lib/ opens a /proc file or parses its text.
//
// Invariants: no allocation, no stdio, no locks; every buffer is the caller's
// or on the stack, so the readers are safe at any point of the allocator's
// life (the heap checker scans while it reads; a profile is written from a
// signal handler). A line longer than the buffer is cut to what fits (the
// addresses at its start always fit; a very long path is truncated).
// Locks: none.
#pragma once

#include <cstddef>
#include <cstdint>

namespace am::os {

// One line of /proc/self/maps: "start-end perms offset dev inode   path".
struct MapsLine {
  uintptr_t start = 0, end = 0, offset = 0;
  char perms[5] = {};        // "rw-p", NUL-terminated
  const char* path = "";     // NUL-terminated; "" for an anonymous mapping
  const char* line = "";     // the whole line, without its newline
  size_t line_len = 0;
  bool anonymous() const { return path[0] == '\0'; }
};

// Parses a maps line (also the header line of an smaps record); false if the
// line does not start with an address range. The pointers point into `line`.
bool parse_maps_line(const char* line, MapsLine* m);

// Streams /proc/self/maps through buf (len >= 256; 8 KiB keeps any path
// whole) and calls fn once per mapping, in address order; fn returns false to
// stop. The MapsLine is valid only during the call. False if the file could
// not be read.
bool for_each_mapping(char* buf, size_t len, bool (*fn)(const MapsLine& m, void* ctx), void* ctx);

// One record of /proc/self/smaps, in bytes.
struct SmapsRecord {
  uintptr_t start = 0, end = 0;
  size_t rss = 0;        // Rss:
  size_t anon_huge = 0;  // AnonHugePages:
};
// Streams /proc/self/smaps through buf (len >= 256) and calls fn once per
// mapping, after its last field. False if the file could not be read.
bool for_each_smaps_record(char* buf, size_t len, bool (*fn)(const SmapsRecord& r, void* ctx), void* ctx);

// The number after "<name>:" in /proc/self/status (e.g. "Threads" -> 3,
// "VmRSS" -> kB as written); -1 if absent or unreadable.
long status_field(const char* name);

// Resident set size of this process in bytes, from /proc/self/statm.
size_t resident_bytes();
// True if the calling thread is the last live thread of the process (the
// thread-group leader may remain as a zombie after pthread_exit), from
// status's Threads: and /proc/self/task/<pid>/stat. False when unsure.
bool only_live_thread();

// Reads up to len-1 bytes of a small /proc or /sys file (e.g. the THP mode in
// /sys/kernel/mm/transparent_hugepage/enabled) into buf, NUL-terminated;
// returns the byte count or -1.
long read_small_file(const char* path, char* buf, size_t len);

}  // namespace am::os

// Proof that ammalloc is running: the AMMALLOC_VERBOSE banner and option list,
// and the AMMALLOC_STARTED_FILE marker that tools/ammalloc-run checks.
//
// Owns: the banner's text (version, build options, THP/NUMA mode) and the
// "option NAME=value (source)" lines, and the one line appended to the marker
// file. Both run once, from init phase 2 (banner_init), with no allocator lock
// held; they format into stack buffers and write(2): no allocation.
// Locks: none.
#pragma once

#include <cstddef>

namespace am {

// Init phase 2: prints the banner and options when AMMALLOC_VERBOSE=1, and
// appends "ammalloc <version> pid <pid> <exe>" to AMMALLOC_STARTED_FILE when set.
void banner_init();
// The banner's one line (no newline): "ammalloc 0.1.0: pid 42; build page_shift=13 ...".
size_t banner_text(char* buf, size_t len);

}  // namespace am

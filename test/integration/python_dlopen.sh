#!/usr/bin/env bash
# python_dlopen.sh LIB BUILDDIR CORE_SO CXX_SO EXT_SO
#
# libammalloc_core.so and libammalloc_cxx.so must load with dlopen into a
# process that is already running threads, the way a Python extension brings
# them (issue 14, item 3). glibc gives a library loaded after start-up only a
# small surplus of static TLS (rtld.optional_static_tls, 512 bytes by default),
# so neither library may carry initial-exec TLS (the DF_STATIC_TLS flag):
# before they were built from the dynamic-TLS variant of the core, ctypes.CDLL
# failed with "cannot allocate memory in static TLS block".
#
#  1. readelf -d: neither library has the STATIC_TLS flag, and both are
#     NODELETE (a dlclose must not unmap the code that the core's background
#     thread, thread-exit key and fork handlers, or the C++ layer's pthread key
#     destructor run).
#     LIB (libammalloc.so, the preload library) keeps its initial-exec thread
#     cache: it still has STATIC_TLS.
#  2. Debian's /usr/bin/python3 starts 4 threads, waits until they run, then
#     loads CORE_SO and CXX_SO with ctypes.CDLL, and EXT_SO (dlopen_ext.cc, an
#     extension-like object linked with both, using the C++ Allocator API).
#     The 4 threads, which existed before the libraries, then call am_malloc /
#     am_free (writing and checking every block) and EXT_SO's entry point at
#     once; so do 4 threads started afterwards. Then a fork: the child
#     allocates through both APIs (the fork handlers were registered late).
# Exit: 0 pass, 1 fail, 77 skip (no /usr/bin/python3 or no readelf).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
[ ${#AM_ARGS[@]} -eq 3 ] || am_fail "usage: $0 LIB BUILDDIR CORE_SO CXX_SO EXT_SO"
core=${AM_ARGS[0]} cxx=${AM_ARGS[1]} ext=${AM_ARGS[2]}
for f in "$core" "$cxx" "$ext"; do [ -f "$f" ] || am_fail "not found: $f"; done
python=/usr/bin/python3
[ -x "$python" ] || am_skip "$python not found (Debian's python3 package)"
command -v readelf >/dev/null 2>&1 || am_skip "readelf not found (binutils)"
am_tmpdir

# --- 1. dynamic-section flags ----------------------------------------------------
failed=0
for f in "$core" "$cxx"; do
  flags=$(readelf -dW "$f" | grep -E '\(FLAGS(_1)?\)')
  echo "$(basename "$f"): ${flags:-no FLAGS entries}" | tr -s ' \n' ' '; echo
  if grep -q STATIC_TLS <<<"$flags"; then
    echo "$AM_SCRIPT: $(basename "$f") has DF_STATIC_TLS (initial-exec TLS): a late dlopen needs" \
         "$(( $(readelf -lW "$f" | awk '$1 == "TLS" { print $6 }') )) bytes of static TLS"
    failed=1
  fi
  grep -E '\(FLAGS_1\)' <<<"$flags" | grep -q NODELETE ||
    { echo "$AM_SCRIPT: $(basename "$f") is not NODELETE (-Wl,-z,nodelete)"; failed=1; }
done

readelf -dW "$AM_LIB" | grep -E '\(FLAGS\)' | grep -q STATIC_TLS ||
  { echo "$AM_SCRIPT: $(basename "$AM_LIB") lost its initial-exec TLS (the fast path's one %fs load)"; failed=1; }

# --- 2. Python, ctypes, threads --------------------------------------------------
script="$AM_TMP/dlopen.py"
cat >"$script" <<'PY'
import ctypes
import os
import sys
import threading

core_path, cxx_path, ext_path = sys.argv[1:4]
NTHREADS = 4
errors = []
go = threading.Event()
running = threading.Barrier(NTHREADS + 1)


def fail(msg):
    errors.append(msg)
    print("FAIL:", msg, flush=True)


def use_core(core, tag, rounds):
    """am_malloc/am_free: batches of blocks, each filled with its own bytes."""
    for r in range(rounds):
        blocks = []
        for i in range(48):
            size = 1 + (tag * 977 + r * 131 + i * 61) % 3000
            if i == 47 and r % 25 == 0:
                size = 400000  # a large block now and then
            p = core.am_malloc(size)
            if not p:
                fail("thread %d: am_malloc(%d) returned NULL" % (tag, size))
                return
            if core.am_malloc_usable_size(p) < size:
                fail("thread %d: usable size below %d" % (tag, size))
            fill = bytes(((tag * 37 + r + i + k) & 0xff) for k in range(min(size, 64)))
            data = (fill * (size // len(fill) + 1))[:size]
            ctypes.memmove(p, data, size)
            blocks.append((p, data))
        for p, data in blocks:
            if ctypes.string_at(p, len(data)) != data:
                fail("thread %d: block %#x changed under us" % (tag, p))
            core.am_free(p)


def use_ext(ext, tag, rounds):
    status = ext.am_dlopen_ext_run(rounds, tag)
    if status != 0:
        fail("thread %d: am_dlopen_ext_run returned %d" % (tag, status))


def early_worker(tag):
    running.wait()   # this thread exists before the libraries are loaded
    go.wait()
    use_core(libs["core"], tag, 200)
    use_ext(libs["ext"], tag, 300)


libs = {}
early = [threading.Thread(target=early_worker, args=(t,)) for t in range(NTHREADS)]
for t in early:
    t.start()
running.wait()

try:
    core = ctypes.CDLL(core_path)
    cxx = ctypes.CDLL(cxx_path)
    ext = ctypes.CDLL(ext_path)
except OSError as e:
    print("FAIL: ctypes.CDLL:", e, flush=True)
    go.set()  # the workers then fail on the missing names; exit before that
    os._exit(1)
core.am_malloc.restype = ctypes.c_void_p
core.am_malloc.argtypes = [ctypes.c_size_t]
core.am_free.restype = None
core.am_free.argtypes = [ctypes.c_void_p]
core.am_malloc_usable_size.restype = ctypes.c_size_t
core.am_malloc_usable_size.argtypes = [ctypes.c_void_p]
ext.am_dlopen_ext_run.restype = ctypes.c_int
ext.am_dlopen_ext_run.argtypes = [ctypes.c_int, ctypes.c_uint]
libs.update(core=core, cxx=cxx, ext=ext)

go.set()
use_core(core, 99, 50)  # the main thread too, meanwhile
for t in early:
    t.join()

late = [threading.Thread(target=lambda t=t: (use_core(core, 10 + t, 50), use_ext(ext, 10 + t, 100)))
        for t in range(NTHREADS)]
for t in late:
    t.start()
for t in late:
    t.join()

pid = os.fork()
if pid == 0:
    ok = True
    try:
        errors.clear()
        use_core(core, 42, 20)
        use_ext(ext, 42, 50)
        ok = not errors
    finally:
        os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
if status != 0:
    fail("forked child: wait status %d" % status)

if errors:
    sys.exit(1)
print("dlopen: %d early + %d late threads and a forked child used am_* and the Allocator API"
      % (NTHREADS, NTHREADS), flush=True)
PY

{ timeout -k 10 120 env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP -u GLIBC_TUNABLES \
    "$python" -s "$script" "$core" "$cxx" "$ext" >"$AM_TMP/out" 2>&1
  status=$?; } 2>/dev/null
cat "$AM_TMP/out"
[ "$status" -eq 0 ] || { echo "$AM_SCRIPT: python3 $(am_status_text "$status")"; failed=1; }

[ "$failed" -eq 0 ] || am_fail "see above"
echo "$AM_SCRIPT: PASS"
exit 0

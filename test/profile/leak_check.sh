#!/usr/bin/env bash
# leak_check.sh LIB BUILDDIR — AMMALLOC_HEAP_CHECK=1 on leak_check:
#  - a true leak (pointer dropped) is reported with its size and stack, the
#    program exits 1 (AMMALLOC_HEAP_CHECK_EXIT_CODE), its buffered stdout is
#    kept, and google-pprof reads the leak profile and names leak_site;
#  - a still-reachable global cache is not a leak; a clean run reports nothing
#    and keeps exit status 0; AMMALLOC_HEAP_CHECK_EXIT_CODE=0 keeps the status.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
prog="$AM_BUILDDIR/leak_check"
[ -x "$prog" ] || am_fail "program not found: $prog"
am_check_preload "$prog"

run() {  # args for the program; env in ENVS
  timeout -k 10 120 env AMMALLOC_HEAP_CHECK=1 AMMALLOC_HEAP_PROFILE="$AM_TMP/lc" ${ENVS:-} \
    LD_PRELOAD="$AM_LIB" "$prog" "$@" >"$AM_TMP/out" 2>"$AM_TMP/err"
}

run
status=$?
[ $status -eq 0 ] || am_fail "clean run $(am_status_text $status): $(cat "$AM_TMP/err")"
grep -q 'leak check' "$AM_TMP/err" && am_fail "clean run reported: $(cat "$AM_TMP/err")"
grep -qx done "$AM_TMP/out" || am_fail "clean run lost its stdout"

run leak
status=$?
cat "$AM_TMP/err"
[ $status -eq 1 ] || am_fail "leaking run: expected exit status 1, got $(am_status_text $status)"
grep -qx done "$AM_TMP/out" || am_fail "leaking run lost its buffered stdout"
grep -q '^ammalloc: leak check: 4444 bytes in 1 objects$' "$AM_TMP/err" || am_fail "no or wrong leak line"
grep -q '^ammalloc: leak of 4444 bytes in 1 object allocated from:$' "$AM_TMP/err" || am_fail "no stack header"
# Symbolised inline: the function and module+offset.
grep -q '^    @ 0x[0-9a-f]* leak_site+0x[0-9a-f]* (leak_check+0x[0-9a-f]*)$' "$AM_TMP/err" || am_fail "no symbolised leak_site frame"
grep -q '^    @ 0x[0-9a-f]* main+0x[0-9a-f]* (leak_check+0x[0-9a-f]*)$' "$AM_TMP/err" || am_fail "no symbolised main frame"
grep -q '^ammalloc: leak profile written to ' "$AM_TMP/err" || am_fail "no 'leak profile written' line"
prof=$(ls "$AM_TMP"/lc.*.leaks.heap 2>/dev/null | head -n 1)
[ -n "$prof" ] || am_fail "no leak profile written"
if command -v google-pprof >/dev/null 2>&1; then
  text=$(google-pprof --text "$prog" "$prof" 2>/dev/null)
  echo "$text" | head -n 5
  top=$(awk 'NR > 1 && $6 != "" { print $6; exit }' <<<"$text")
  [ "$top" = "leak_site" ] || am_fail "google-pprof's top leak is '$top', not leak_site"
fi

ENVS="AMMALLOC_HEAP_CHECK_EXIT_CODE=0" run leak
status=$?
[ $status -eq 0 ] || am_fail "AMMALLOC_HEAP_CHECK_EXIT_CODE=0: got $(am_status_text $status)"
grep -q '^ammalloc: leak check: 4444 bytes in 1 objects$' "$AM_TMP/err" || am_fail "no leak line with exit code 0"
# Without AMMALLOC_HEAP_PROFILE: in the working directory (not /tmp).
mkdir -p "$AM_TMP/cwd"
(cd "$AM_TMP/cwd" && timeout -k 10 120 env AMMALLOC_HEAP_CHECK=1 LD_PRELOAD="$AM_LIB" "$prog" leak >/dev/null 2>"$AM_TMP/err")
[ $? -eq 1 ] || am_fail "leak in cwd: wrong status"
ls "$AM_TMP"/cwd/ammalloc.*.leaks.heap >/dev/null 2>&1 || am_fail "no leak profile in the working directory: $(cat "$AM_TMP/err")"
grep -q "^ammalloc: leak profile written to $AM_TMP/cwd/ammalloc\.[0-9]*\.leaks\.heap;" "$AM_TMP/err" || am_fail "wrong 'written to' line: $(cat "$AM_TMP/err")"

# An unwritable prefix: an honest warning, and no claim that it was written.
timeout -k 10 120 env AMMALLOC_HEAP_CHECK=1 AMMALLOC_HEAP_PROFILE=/nonexistent-dir/lc LD_PRELOAD="$AM_LIB" "$prog" leak \
  >/dev/null 2>"$AM_TMP/err"
grep -q '^ammalloc: warning: leak check: cannot write the leak profile /nonexistent-dir/lc\.[0-9]*\.leaks\.heap' "$AM_TMP/err" \
  || am_fail "no warning for an unwritable leak profile: $(cat "$AM_TMP/err")"
grep -q 'leak profile written' "$AM_TMP/err" && am_fail "claims the profile was written: $(cat "$AM_TMP/err")"

# The program rewrites its environment and changes directory: the prefix of
# the start stays.
mkdir -p "$AM_TMP/rw"
(cd "$AM_TMP/rw" && timeout -k 10 120 env AMMALLOC_HEAP_CHECK=1 AMMALLOC_HEAP_PROFILE="$AM_TMP/rw/keep" LD_PRELOAD="$AM_LIB" \
  "$prog" leak-rewrite >/dev/null 2>"$AM_TMP/err")
ls "$AM_TMP"/rw/keep.*.leaks.heap >/dev/null 2>&1 || am_fail "leak profile not at the start's prefix: $(cat "$AM_TMP/err")"
echo "leak_check: PASS"

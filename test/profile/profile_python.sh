#!/usr/bin/env bash
# profile_python.sh LIB BUILDDIR — /usr/bin/python3 under the preloaded
# profiler: a heap profile written on AMMALLOC_HEAP_PROFILE_SIGNAL (the script
# signals itself while 100 MB of bytes objects are live) that google-pprof
# reads with python's symbols.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
pp_need_pprof
am_tmpdir
pp_need_python
am_check_preload "$py"
sig=$(kill -l USR1)

timeout -k 10 120 env AMMALLOC_HEAP_PROFILE="$AM_TMP/py" AMMALLOC_HEAP_PROFILE_SIGNAL="$sig" \
  LD_PRELOAD="$AM_LIB" "$py" -c '
import os, signal
keep = [bytes(1000) + str(i).encode() for i in range(100000)]
os.kill(os.getpid(), signal.SIGUSR1)
print(len(keep))
' >"$AM_TMP/out" 2>"$AM_TMP/err"
status=$?
[ $status -eq 0 ] || am_fail "python3 $(am_status_text $status): $(cat "$AM_TMP/err")"
grep -q '(signal)' "$AM_TMP/err" || am_fail "no profile written on the signal: $(cat "$AM_TMP/err")"
# The signal's profile (an in-use peak may have written one before it).
prof=$(sed -n 's/^ammalloc: heap profile \(.*\) (signal)$/\1/p' "$AM_TMP/err" | head -n 1)
[ -n "$prof" ] || am_fail "no profile written"
text=$(google-pprof --text "$py" "$prof" 2>/dev/null)
echo "$text" | head -n 8
total=$(awk '/^Total:/ { print $2 }' <<<"$text")
awk -v t="$total" 'BEGIN { exit (t >= 70 && t <= 140) ? 0 : 1 }' ||
  am_fail "expected ~100 MB live at the signal, google-pprof says '$total'"
# Symbols: python's allocation functions by name, not bare addresses.
grep -Eq 'Py[A-Za-z_]+|_Py[A-Za-z_]+' <<<"$text" || am_fail "no python symbols in the output"
echo "profile_python: PASS"

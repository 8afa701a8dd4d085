#!/usr/bin/env bash
# signals.sh LIB BUILDDIR — AMMALLOC_STATS_SIGNAL prints the statistics report
# and AMMALLOC_HEAP_PROFILE_SIGNAL writes a heap profile, from idle threads and
# from a thread interrupted inside the allocator (deferred to its next slow
# path); the program never deadlocks and ends normally.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
prog="$AM_BUILDDIR/signals"
[ -x "$prog" ] || am_fail "program not found: $prog"
am_check_preload "$prog"
usr1=$(kill -l USR1)
usr2=$(kill -l USR2)

timeout -k 10 120 env AMMALLOC_STATS_SIGNAL="$usr2" AMMALLOC_HEAP_PROFILE_SIGNAL="$usr1" \
  AMMALLOC_HEAP_PROFILE="$AM_TMP/sig" LD_PRELOAD="$AM_LIB" "$prog" "$usr2" "$usr1" \
  >"$AM_TMP/out" 2>"$AM_TMP/err"
status=$?
[ $status -eq 0 ] || am_fail "signals $(am_status_text $status): $(tail -n 20 "$AM_TMP/err")"
grep -qx 'signals: done' "$AM_TMP/out" || am_fail "no 'signals: done'"
reports=$(grep -c 'Bytes in use by application' "$AM_TMP/err")
profiles=$(ls "$AM_TMP"/sig.*.heap 2>/dev/null | wc -l)
deferred=$(grep -c 'signal arrived inside the allocator' "$AM_TMP/err")
echo "signals: $reports stats reports, $profiles profiles, $deferred deferred"
# Signals that arrive while one is pending merge (POSIX does not queue them),
# and reports deferred to the next slow path merge too, so how many of the 101
# produce output depends on scheduling (44 to 80 seen on a loaded 2-core
# machine). What must hold: the process survives them all, the two sent while
# idle each produce a report and a profile, and every profile is well formed.
[ "$reports" -ge 2 ] || am_fail "only $reports statistics reports for 101 signals"
[ "$profiles" -ge 2 ] || am_fail "only $profiles heap profiles for 101 signals"
for f in "$AM_TMP"/sig.*.heap; do
  head -n 1 "$f" | grep -q '^heap profile: ' || am_fail "bad profile $(basename "$f")"
  grep -qx 'MAPPED_LIBRARIES:' "$f" || am_fail "no MAPPED_LIBRARIES in $(basename "$f")"
done
echo "signals: PASS"

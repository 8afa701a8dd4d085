#!/usr/bin/env bash
# single_thread_peak.sh LIB BUILDDIR
#
# A single-threaded program after a 64 MiB peak (single_thread_peak.c) must
# still have 1 thread (ammalloc creates none while the program has only one),
# unshare(CLONE_NEWUSER) must succeed where it does under glibc (skip when the
# kernel or the sandbox refuses it to glibc too), and the freed pages must go
# back to the OS while the program keeps allocating (release delay 100 ms).
# With a second application thread the background thread starts, never with
# AMMALLOC_BACKGROUND_THREAD=0.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
prog="$AM_BUILDDIR/single_thread_peak"
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
am_check_preload "$prog"

glibc=$(timeout -k 5 60 "$prog" | tail -n 1) || am_fail "the program failed under glibc"
out=$(timeout -k 5 60 env AMMALLOC_RELEASE_DELAY_MS=100 AMMALLOC_SCAVENGE_INTERVAL_MS=20 \
  LD_PRELOAD="$AM_LIB" "$prog") || am_fail "the program failed under ammalloc"
echo "glibc:    $glibc"
echo "ammalloc: $out"
line=$(tail -n 1 <<<"$out")
[[ $line == *"threads=1 "* ]] || am_fail "ammalloc: the single-threaded program has more than 1 thread: $line"
[[ $line == *"rss_fell=1"* ]] || am_fail "ammalloc: RSS did not fall within 3 s of the peak while allocating"
if [[ $glibc == *"unshare=ok"* ]]; then
  [[ $line == *"unshare=ok"* ]] || am_fail "ammalloc: unshare(CLONE_NEWUSER) failed where it succeeds under glibc"
else
  echo "$AM_SCRIPT: unshare(CLONE_NEWUSER) fails under glibc too (${glibc##*unshare=}): checked the thread count only"
fi
# A program with two threads of its own gets the background thread (3 in all),
# except with AMMALLOC_BACKGROUND_THREAD=0 (2).
two=$(timeout -k 5 60 env LD_PRELOAD="$AM_LIB" "$prog" two | tail -n 1) || am_fail "the two-thread run failed"
two0=$(timeout -k 5 60 env AMMALLOC_BACKGROUND_THREAD=0 LD_PRELOAD="$AM_LIB" "$prog" two | tail -n 1) ||
  am_fail "the two-thread run with AMMALLOC_BACKGROUND_THREAD=0 failed"
echo "ammalloc, two threads:                          $two"
echo "ammalloc, two threads, AMMALLOC_BACKGROUND_THREAD=0: $two0"
[[ $two == *"threads=3 "* ]] || am_fail "with two application threads the background thread should run: $two"
[[ $two0 == *"threads=2 "* ]] || am_fail "AMMALLOC_BACKGROUND_THREAD=0 must keep the background thread off: $two0"
echo "$AM_SCRIPT: PASS"
exit 0

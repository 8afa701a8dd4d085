#!/usr/bin/env bash
# fork_child_speed.sh LIB BUILDDIR
#
# A child forked from a parent with 16 busy threads must allocate as a fresh
# process does: its central-lock acquisitions over 2M malloc+free pairs at
# most 2x those of a fresh single-threaded process (plus 64 for noise), and
# one thread cache in its stats (the parent's threads are gone). Before the
# fork repair the dead threads' budget claims stayed, and the child went to
# the central cache about 3 million times.
# Prints the times of glibc and tcmalloc (if installed) beside ammalloc's, for
# the record; only ammalloc's acquisitions and cache count are checked.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
prog="$AM_BUILDDIR/fork_child_speed"
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
am_check_preload "$prog"

run() {  # run PRELOAD MODE -> the program's result line
  timeout -k 10 120 env LD_PRELOAD="$1" "$prog" "$2" | grep "^fork_child_speed: $2 "
}
field() { sed -n "s/.* $1=\([-0-9.]*\).*/\1/p" <<<"$2"; }

fresh=$(run "$AM_LIB" fresh) || am_fail "fresh run failed"
forked=$(run "$AM_LIB" forked) || am_fail "forked run failed"
printf '%-10s %-8s %s\n' allocator mode result
printf '%-10s %-8s %s\n' ammalloc fresh "$fresh" ammalloc forked "$forked"
for other in glibc:"" tcmalloc:/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do
  name=${other%%:*} lib=${other#*:}
  [ -z "$lib" ] || [ -f "$lib" ] || continue
  for mode in fresh forked; do printf '%-10s %-8s %s\n' "$name" "$mode" "$(run "$lib" "$mode")"; done
done

fa=$(field acquisitions "$fresh") ca=$(field acquisitions "$forked") caches=$(field caches "$forked")
[ -n "$fa" ] && [ -n "$ca" ] || am_fail "no acquisitions figure in the output"
[ "$ca" -le $((2 * fa + 64)) ] ||
  am_fail "the forked child took the central lock $ca times for 2M pairs, a fresh process $fa (limit 2x + 64)"
[ "$caches" = 1 ] || am_fail "the forked child's stats show $caches thread caches, expected 1"
echo "$AM_SCRIPT: PASS"
exit 0

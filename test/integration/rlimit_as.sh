#!/usr/bin/env bash
# rlimit_as.sh LIB BUILDDIR
#
# Out of memory is NULL + ENOMEM, never an abort (issue 13, item 3): the
# allocation-heavy program rlimit_as.c runs under RLIMIT_AS with LIB
# preloaded, in two series of 20 limits: set by the program at the top of main
# (its address space then plus 1 MiB to 2 GiB), and set before exec (the system
# malloc's address space at main plus 16 MiB to 2 GiB: ammalloc's start-up
# runs under it too). No child may be killed by a signal, and every failure
# must be NULL + ENOMEM with allocation working again once everything is
# freed. The same driver runs with the system malloc for comparison, and, with
# RLIMIT_AS_PEERS=1 in the environment (2 more minutes: not in CI), with
# jemalloc, tcmalloc and mimalloc where their Debian packages are installed;
# the others never fail the test.
# Exit: 0 pass, 1 fail.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
prog="$AM_BUILDDIR/rlimit_as"
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
am_check_preload "$prog"

limits=20
summary=()
run() { # NAME [LIB]: both series; fails if either does
  local name=$1 lib=${2:-} out rc=0 mode
  for mode in "" --from-exec; do
    out=$(timeout -k 5 600 "$prog" drive --name "$name" --limits "$limits" ${lib:+--lib "$lib"} $mode 2>&1) || rc=1
    echo "$out"
    mapfile -t -O "${#summary[@]}" summary < <(grep -E 'RLIMIT_AS (children killed|contract breaches)' <<<"$out")
  done
  return $rc
}

run ammalloc "$AM_LIB"
am_rc=$?
run glibc || true
libdir=/usr/lib/x86_64-linux-gnu
[ "${RLIMIT_AS_PEERS:-0}" = 1 ] && for peer in jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  [ -f "$libdir/${peer#*:}" ] && { run "${peer%%:*}" "$libdir/${peer#*:}" || true; }
done
echo
echo "summary:"
printf '  %s\n' "${summary[@]}"
[ $am_rc -eq 0 ] || am_fail "ammalloc: a child was killed or broke the contract under RLIMIT_AS (see above)"
echo "$AM_SCRIPT: PASS"
exit 0

#!/usr/bin/env bash
# run_program.sh LIB BUILDDIR PROGRAM [ARGS...]
#
# Runs BUILDDIR/PROGRAM with LD_PRELOAD=LIB under `timeout 120`; passes iff the
# program exits 0. Used for api_edge, api_edge_cxx, threads_cross, fork_threads.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
[ ${#AM_ARGS[@]} -ge 1 ] || am_fail "no program named (usage: $0 LIB BUILDDIR PROGRAM [ARGS...])"
prog="$AM_BUILDDIR/${AM_ARGS[0]}"
args=("${AM_ARGS[@]:1}")
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
AM_SCRIPT=$(basename "$prog")

am_check_preload "$prog"

echo "$AM_SCRIPT: running LD_PRELOAD=$AM_LIB $prog ${args[*]}"
timeout -k 10 120 env LD_PRELOAD="$AM_LIB" "$prog" "${args[@]}"
status=$?
[ "$status" -eq 0 ] || am_fail "$prog $(am_status_text "$status")"
echo "$AM_SCRIPT: PASS"
exit 0

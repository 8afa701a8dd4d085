#!/usr/bin/env bash
# proof.sh LIB BUILDDIR AMMALLOC_RUN VERSION — proof that ammalloc runs, in real
# programs (/usr/bin/python3 among them):
#  - AMMALLOC_VERBOSE=1: exactly one banner line with the project's version,
#    build options and THP/NUMA mode, then one line per option of the table
#    with its source (an option set in the environment says so);
#  - unknown AMMALLOC_* variables: one warning each naming the closest option;
#  - ammalloc-run --version prints the library's version; ammalloc-run fails
#    (125, an ERROR line) when the preload did not take effect.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
pp_need_run
version=${AM_ARGS[1]:-}
[ -n "$version" ] || am_fail "no version argument"
pp_need_python

err=$(env AMMALLOC_VERBOSE=1 AMMALLOC_THREAD_CACHE_MAX=4MiB LD_PRELOAD="$AM_LIB" $py -c 'print(sum(range(10)))' 2>&1 >"$AM_TMP/out")
[ "$(cat "$AM_TMP/out")" = 45 ] || am_fail "python's output changed: $(cat "$AM_TMP/out")"
n=$(grep -c "^ammalloc $version: pid [0-9]*; build page_shift=[0-9]* harden=[01] libnuma=[a-z]* debug_checks=[01]; THP [a-z]* (kernel [a-z]*); NUMA " <<<"$err")
[ "$n" = 1 ] || am_fail "expected one banner line with version $version, got $n:
$err"
opts=$(grep -c '^ammalloc: option AMMALLOC_[A-Z_]*=.* (\(default\|environment\|API\))$' <<<"$err")
[ "$opts" -ge 25 ] || am_fail "only $opts option lines:
$err"
grep -qx 'ammalloc: option AMMALLOC_THREAD_CACHE_MAX=4M (environment)' <<<"$err" || am_fail "4MiB from the environment not listed as 4M (environment)"
grep -qx 'ammalloc: option AMMALLOC_THREAD_CACHE_TOTAL=32M (default)' <<<"$err" || am_fail "default not listed"
grep -q warning <<<"$err" && am_fail "warnings without a cause: $err"

# Without AMMALLOC_VERBOSE: silent.
err=$(env LD_PRELOAD="$AM_LIB" $py -c 'pass' 2>&1)
[ -z "$err" ] || am_fail "output without AMMALLOC_VERBOSE: $err"

# Typos: one warning each, with the closest known name.
err=$(env AMMALLOC_HEAP_PROFLE=x AMMALLOC_STAT_ON_EXIT=1 LD_PRELOAD="$AM_LIB" $py -c 'pass' 2>&1)
grep -qx 'ammalloc: warning: unknown option AMMALLOC_HEAP_PROFLE ignored; did you mean AMMALLOC_HEAP_PROFILE?' <<<"$err" \
  || am_fail "no warning for AMMALLOC_HEAP_PROFLE: $err"
grep -qx 'ammalloc: warning: unknown option AMMALLOC_STAT_ON_EXIT ignored; did you mean AMMALLOC_STATS_ON_EXIT?' <<<"$err" \
  || am_fail "no warning for AMMALLOC_STAT_ON_EXIT: $err"
[ "$(grep -c warning <<<"$err")" = 2 ] || am_fail "not exactly two warnings: $err"

# A crash signal is refused with a warning (and no handler: the fault kills).
err=$(env AMMALLOC_HEAP_PROFILE_SIGNAL=11 LD_PRELOAD="$AM_LIB" $py -c 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)' 2>&1)
status=$?
[ $status -eq 139 ] || am_fail "SIGSEGV with AMMALLOC_HEAP_PROFILE_SIGNAL=11: status $status, not 139"
grep -q "AMMALLOC_HEAP_PROFILE_SIGNAL='11' is a signal that means a crash" <<<"$err" || am_fail "no refusal warning: $err"
err=$(env AMMALLOC_NUMA=fast LD_PRELOAD="$AM_LIB" $py -c 'pass' 2>&1)
grep -q "AMMALLOC_NUMA='fast' is not one of off|local|interleave; using the default local" <<<"$err" || am_fail "choice warning: $err"

# The wrapper: --version, and a loud failure when the preload has no effect.
out=$("$run" --version) || am_fail "--version failed"
[[ "$out" == "ammalloc-run: ammalloc $version (/"*"/libammalloc.so)" ]] || am_fail "--version printed '$out'"
"$run" --lib /etc/passwd -- $py -c 'pass' 2>"$AM_TMP/err"
status=$?
[ $status -eq 125 ] || am_fail "no preload: status $status, not 125"
grep -q 'ammalloc-run: ERROR: .* did not run on ammalloc' "$AM_TMP/err" || am_fail "no ERROR line: $(cat "$AM_TMP/err")"
"$run" -- $py -c 'import sys; sys.exit(4)'
status=$?
[ $status -eq 4 ] || am_fail "python's exit status 4 became $status"
echo "proof: PASS"

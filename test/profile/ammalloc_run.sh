#!/usr/bin/env bash
# ammalloc_run.sh LIB BUILDDIR AMMALLOC_RUN — tools/ammalloc-run: preloads,
# keeps the exit status, passes options, and for --profile prints the top of
# google-pprof's report and the commands to explore it.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
pp_need_run

# Exit status kept, and the library found next to the script (no --lib).
"$run" -- bash -c 'exit 3'
status=$?
[ $status -eq 3 ] || am_fail "exit status 3 became $status"
out=$("$run" --stats -- /bin/true 2>&1) || am_fail "--stats run failed"
grep -q 'Bytes in use by application' <<<"$out" || am_fail "--stats printed no report"
out=$("$run" --set STATS_ON_EXIT=1 -- /bin/true 2>&1)
grep -q 'Bytes in use by application' <<<"$out" || am_fail "--set STATS_ON_EXIT=1 ignored"

if command -v google-pprof >/dev/null 2>&1; then
  out=$("$run" --profile "$AM_TMP/prof" --set PROFILE_SAMPLE=64K -- "$AM_BUILDDIR/profile_sites" 0.3 2>&1)
  status=$?
  echo "$out" | tail -n 20
  [ $status -eq 0 ] || am_fail "--profile run failed ($status)"
  grep -q 'ammalloc-run: google-pprof --text' <<<"$out" || am_fail "no google-pprof summary"
  grep -Eq '^ +[0-9.]+ +[0-9.]+% .* site_seventy$' <<<"$out" || am_fail "site_seventy missing from the summary"
  grep -q -- '--svg' <<<"$out" || am_fail "no --svg hint"
fi

"$run" --heap-check -- "$AM_BUILDDIR/leak_check" leak >/dev/null 2>"$AM_TMP/err"
status=$?
[ $status -eq 1 ] || am_fail "--heap-check on a leak: status $status, not 1"
grep -q 'ammalloc: leak check: 4444 bytes' "$AM_TMP/err" || am_fail "--heap-check printed no leak"
echo "ammalloc_run: PASS"

#!/usr/bin/env bash
# ci_run.sh SOURCE_ROOT — .ci/run counts the README's main command (the example
# smoke run) as a test: a failing example makes CI fail and shows in the final
# "N passed, N failed" line; a passing one is counted as passed. The two
# commands are replaced by stubs (the real ones take minutes).
set -u
root=$1
run() {  # example-cmd tests-cmd -> sets out, status
  out=$(AMMALLOC_CI_EXAMPLE="$1" AMMALLOC_CI_TESTS="$2" bash "$root/.ci/run" 2>&1)
  status=$?
}
fail() { echo "ci_run: FAIL: $*"; echo "$out"; exit 1; }

run "false" "echo 5 passed, 0 failed"
[ $status -ne 0 ] || fail "a failing example left .ci/run with status 0"
[ "$(tail -n 1 <<<"$out")" = "5 passed, 1 failed" ] || fail "last line is not '5 passed, 1 failed'"
grep -q 'run-example FAILED' <<<"$out" || fail "no run-example FAILED line"

run "true" "echo 5 passed, 0 failed, 2 skipped"
[ $status -eq 0 ] || fail "all passing, but status $status"
[ "$(tail -n 1 <<<"$out")" = "6 passed, 0 failed, 2 skipped" ] || fail "last line is not '6 passed, 0 failed, 2 skipped'"

run "true" "bash -c 'echo 5 passed, 1 failed; exit 1'"
[ $status -ne 0 ] || fail "a failing test runner left .ci/run with status 0"
[ "$(tail -n 1 <<<"$out")" = "6 passed, 1 failed" ] || fail "last line is not '6 passed, 1 failed'"

run "true" "bash -c 'echo broken; exit 2'"
[ $status -ne 0 ] || fail "a runner without a summary left status 0"
echo "ci_run: PASS"

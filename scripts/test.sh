#!/usr/bin/env bash
# Runs every test of ammalloc: installs what is missing, builds, and runs
#  1. the release build: unit tests, layout checks and integration tests
#     (libammalloc.so preloaded into real programs);
#  2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer
#     (core library, no interposition), with debug checks (lock order);
#  3. the threaded unit tests under ThreadSanitizer.
# Ends with one line: "N passed, N failed, N skipped".
# Usage: scripts/test.sh [--quick]   (--quick: release build only)
set -u
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1

scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

runs=()   # build directories whose results are counted
run_suite() {  # builddir, setup options (as one string), test args...
  local dir=$1 opts=$2; shift 2
  echo "=== $dir: building"
  # shellcheck disable=SC2086
  if ! scripts/build.sh "$dir" $opts; then
    echo "=== $dir: BUILD FAILED"; build_failures=$((build_failures + 1)); return
  fi
  echo "=== $dir: meson test $*"
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
  runs+=("$dir")
}

build_failures=0
run_suite build "--buildtype=release"
if [ $quick -eq 0 ]; then
  run_suite build-asan "--buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -Ddebug_checks=true" \
    --suite unit --no-suite layout --no-suite rss
  run_suite build-tsan "--buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false" --suite threaded
fi

/usr/bin/python3 - "$build_failures" "${runs[@]}" <<'PY'
import json, sys
failed = int(sys.argv[1]); passed = skipped = 0
for d in sys.argv[2:]:
    try:
        lines = open(f"{d}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        failed += 1; continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY

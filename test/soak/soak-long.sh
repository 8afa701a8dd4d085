#!/usr/bin/env bash
# The long soak, by hand: python_suite.sh, redis.sh and sqlite.sh in their long
# versions, round after round, until MINUTES have passed (at least one round).
#
# Usage: test/soak/soak-long.sh [minutes] [LIB]     (default 60 minutes)
#   LIB: a libammalloc.so to test; by default build-stress/ is configured
#   (release) and built, as scripts/stress.sh does.
# One round (python 32 modules, redis 3 x 1M requests x 15 types + 100k keys,
# sqlite 20 MB of SQL in memory and on a file, each also on the system malloc)
# took 38 minutes on 2 busy cores (python 10, redis 18, sqlite 10). Prints
# each script's summary lines; logs of failed rounds are kept in
# build-stress/soak-logs/.
# Exit: 0 every round passed, 1 otherwise.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
minutes=${1:-60}
lib=${2:-}
dir=${AMMALLOC_STRESS_BUILD:-build-stress}
if [ -z "$lib" ]; then
  scripts/deps.sh redis-server redis-tools sqlite3 libpython3.11-testsuite || exit 1
  [ -f "$dir/build.ninja" ] || meson setup "$dir" --buildtype=release >/dev/null || exit 1
  nice meson compile -C "$dir" ammalloc:shared_library >"$dir/soak-build.log" 2>&1 ||
    { tail -n 30 "$dir/soak-build.log"; echo "soak-long: build failed"; exit 1; }
  lib="$root/$dir/libammalloc.so"
fi
case "$lib" in /*) ;; *) lib="$PWD/$lib" ;; esac
mkdir -p "$dir/soak-logs"
t0=$(date +%s)
end=$((t0 + minutes * 60))
round=0 failed=0
while :; do
  round=$((round + 1))
  for s in python_suite redis sqlite; do
    start=$(date +%s)
    log="$dir/soak-logs/$s.round$round.log"
    bash "test/soak/$s.sh" "$lib" "$dir" long >"$log" 2>&1
    rc=$?
    case $rc in
      0) verdict=PASS ;;
      77) verdict="SKIP ($(tail -n 1 "$log"))" ;;
      *) verdict="FAIL (log: $log)"; failed=$((failed + 1)) ;;
    esac
    echo "soak-long: round $round: $s: $verdict, $(($(date +%s) - start)) s"
    grep -E "^$s: " "$log" 2>/dev/null | sed 's/^/    /'  # the script's own summary lines
    case $rc in 0 | 77) rm -f "$log" ;; esac
  done
  [ "$(date +%s)" -lt "$end" ] || break
done
echo "soak-long: $round round(s) in $((($(date +%s) - t0) / 60)) minutes, $failed failure(s)"
[ $failed -eq 0 ]

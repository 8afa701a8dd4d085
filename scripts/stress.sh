#!/usr/bin/env bash
# Long stress run: test/stress/stress with libammalloc.so preloaded, the
# scavenger and the GC at aggressive settings (every 10 ms, no release delay).
#
# Usage: scripts/stress.sh [threads] [minutes] [more stress options, e.g. --seed 7]
#        (default 4 threads, 10 minutes)
#
# Builds (release) into build-stress/ (AMMALLOC_STRESS_BUILD overrides), then
# runs. The program checks every object, forks now and then, creates and
# destroys threads, and ends by reconciling the stats (see test/stress/stress.cc).
# CI runs the 20-second version: meson test -C build --suite stress.
# Exit: the program's (0 pass, 1 failure, 77 not under ammalloc).
set -u
cd "$(dirname "$0")/.." || exit 1
threads=${1:-4}
minutes=${2:-10}
shift 2 2>/dev/null || shift $#
dir=${AMMALLOC_STRESS_BUILD:-build-stress}

scripts/deps.sh || exit 1
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" --buildtype=release >/dev/null || { echo "stress.sh: meson setup failed"; exit 1; }
fi
if ! nice meson compile -C "$dir" ammalloc:shared_library test/stress/stress >"$dir/stress-build.log" 2>&1; then
  tail -n 30 "$dir/stress-build.log"; echo "stress.sh: build failed"; exit 1
fi
lib=$(ls "$dir"/libammalloc.so 2>/dev/null) || { echo "stress.sh: no $dir/libammalloc.so"; exit 1; }
case "$lib" in /*) ;; *) lib="$PWD/$lib" ;; esac

echo "stress.sh: $threads threads, $minutes minutes, LD_PRELOAD=$lib"
ulimit -c 0 2>/dev/null || true
env LD_PRELOAD="$lib" AMMALLOC_GC_INTERVAL_MS=10 AMMALLOC_SCAVENGE_INTERVAL_MS=10 AMMALLOC_RELEASE_DELAY_MS=0 \
  "$dir/test/stress/stress" --threads "$threads" --minutes "$minutes" "$@"
rc=$?
echo "stress.sh: exit $rc"
exit $rc

#!/usr/bin/env bash
# What a deeper AMMALLOC_PROFILE_STACK_DEPTH costs: instructions per sampled
# allocation (callgrind, exact and independent of machine load), for a program
# whose allocations happen 300 frames below main, with every allocation
# sampled (AMMALLOC_PROFILE_SAMPLE=1), at depths 64, 128 and 256, against the
# same run with sampling off. Prints a Markdown table.
# Usage: scripts/stack-depth-cost.sh [builddir]   (default build)
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
scripts/deps.sh
scripts/build.sh "$dir" --buildtype=release
lib=$PWD/$dir/libammalloc.so
prog=$(mktemp -d)/stack_depth; trap 'rm -rf "$(dirname "$prog")"' EXIT
cc -O2 -o "$prog" test/bench/stack_depth.c
n=2000
count() {  # env... -> total instructions (Ir) of the run
  local out; out=$(mktemp)
  env "$@" valgrind --tool=callgrind --callgrind-out-file="$out" "$prog" 300 "$n" >/dev/null 2>&1
  awk '/^summary:/ { print $2 }' "$out"; rm -f "$out"
}
base=$(count LD_PRELOAD="$lib" AMMALLOC_PROFILE_SAMPLE=0)
echo "| AMMALLOC_PROFILE_STACK_DEPTH | instructions per sampled allocation | vs 64 |"
echo "|---|---|---|"
first=""
for d in 64 128 256; do
  # The profiler runs from start-up with a prefix in a scratch directory.
  ir=$(count LD_PRELOAD="$lib" AMMALLOC_PROFILE_SAMPLE=1 AMMALLOC_PROFILE_STACK_DEPTH=$d \
       AMMALLOC_HEAP_PROFILE="$(dirname "$prog")/p" AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL=0)
  per=$(( (ir - base) / n ))
  [ -z "$first" ] && first=$per
  echo "| $d | $per | $(awk -v a="$per" -v b="$first" 'BEGIN { printf "%.2fx", a / b }') |"
done
echo "(N=$n malloc(100)+free pairs 300 frames below main; baseline: the same run with AMMALLOC_PROFILE_SAMPLE=0)"

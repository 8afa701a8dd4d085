#!/usr/bin/env bash
# ammalloc's main job on a bundled example: an inference-server-like workload
# (tools/example_workload.cc: worker threads, 64-byte aligned activation buffers
# of 4 KiB..16 MiB, many small metadata objects, cross-thread frees) run under
# LD_PRELOAD=libammalloc.so, with ammalloc's statistics report, side by side
# with the same program on glibc malloc (time, peak RSS, identical output),
# then a heap profile of the same workload (AMMALLOC_HEAP_PROFILE, read with
# google-pprof: where the live bytes were at their peak, and where every byte
# was allocated). Installs and builds what is missing first.
# Usage: scripts/run-example.sh [--smoke] [threads] [steps]
set -eu
cd "$(dirname "$0")/.."
smoke=0; [ "${1:-}" = "--smoke" ] && { smoke=1; shift; }
threads=${1:-4}; steps=${2:-200}
[ $smoke -eq 1 ] && { threads=2; steps=20; }

scripts/deps.sh
scripts/build.sh build --buildtype=release
lib=$PWD/build/libammalloc.so
ex=$PWD/build/tools/example_workload
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT

run() {  # label, env...
  local label=$1; shift
  # time(1) itself runs without the preload; env(1) execs into the workload.
  /usr/bin/time -f "%e %M" -o "$out/$label.time" env "$@" "$ex" "$threads" "$steps" \
    > "$out/$label.out" 2> "$out/$label.err"
}
run glibc
run ammalloc LD_PRELOAD="$lib" AMMALLOC_STATS_ON_EXIT=1

echo "## ammalloc statistics at exit (LD_PRELOAD=build/libammalloc.so AMMALLOC_STATS_ON_EXIT=1)"
grep -v '^example_workload' "$out/ammalloc.err" | head -n 60
echo
echo "## example_workload, $threads threads x $steps steps"
printf '| allocator | wall time (s) | peak RSS (MiB) | output |\n|---|---|---|---|\n'
for a in glibc ammalloc; do
  read -r secs kib < "$out/$a.time"
  printf '| %s | %s | %s | %s |\n' "$a" "$secs" "$(awk -v k="$kib" 'BEGIN{printf "%.1f", k/1024}')" "$(cat "$out/$a.out")"
done
if ! cmp -s "$out/glibc.out" "$out/ammalloc.out"; then
  echo "ERROR: output differs between glibc and ammalloc" >&2
  exit 1
fi

# Heap profile of the same workload: a profile every 1 GiB allocated and one at
# exit. The one with the most bytes in use shows the peak; the exit profile's
# --alloc_space shows where everything was allocated.
run profile LD_PRELOAD="$lib" AMMALLOC_HEAP_PROFILE="$out/example" AMMALLOC_HEAP_PROFILE_INTERVAL=1G
if ! cmp -s "$out/glibc.out" "$out/profile.out"; then
  echo "ERROR: output differs with the heap profiler on" >&2
  exit 1
fi
peak=$(for f in "$out"/example.*.heap; do echo "$(head -n 1 "$f" | awk '{print $4}') $f"; done | sort -n | tail -n 1 | cut -d' ' -f2)
last=$(ls "$out"/example.*.heap | sort | tail -n 1)
echo
echo "## heap profile (LD_PRELOAD=build/libammalloc.so AMMALLOC_HEAP_PROFILE=<prefix>), $(ls "$out"/example.*.heap | wc -l) profiles written"
echo "### in use at the peak: google-pprof --text build/tools/example_workload $(basename "$peak")"
google-pprof --text "$ex" "$peak" 2>/dev/null | head -n 10
echo "### allocated over the run: google-pprof --text --alloc_space build/tools/example_workload $(basename "$last")"
google-pprof --text --alloc_space "$ex" "$last" 2>/dev/null | head -n 8
echo "(tools/ammalloc-run --profile PREFIX -- PROGRAM does the same for any program; see README \"Heap profiling\")"

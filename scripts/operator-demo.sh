#!/usr/bin/env bash
# What an operator sees, on the PyTorch workload (test/bench/torch_infer.py
# under /usr/bin/python3; installs python3-torch if missing): the verbose
# banner, the profile at the peak of bytes in use with google-pprof's top 10
# (ammalloc-run --profile), the timeline (CSV + SVG) and the flame graph of the
# peak, the SVGs converted to PNG when rsvg-convert is there. Then a CMake
# consumer built against a `meson install --destdir` (test/install/install.sh).
# Usage: scripts/operator-demo.sh [OUTDIR] [scale] [builddir]   (default bench-out/operator, 1, build)
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench-out/operator}; scale=${2:-1}; build=${3:-build}
scripts/deps.sh
/usr/bin/python3 -c 'import torch' 2>/dev/null || scripts/deps.sh python3-torch
scripts/build.sh "$build" --buildtype=release
mkdir -p "$out"; out=$(cd "$out" && pwd)
run=$build/tools/ammalloc-run
prog=(/usr/bin/python3 test/bench/torch_infer.py "$scale")

echo "## verbose banner (AMMALLOC_VERBOSE=1)"
AMMALLOC_VERBOSE=1 LD_PRELOAD=$PWD/$build/libammalloc.so /usr/bin/python3 -c 'pass' 2>&1 | head -n 1
echo
echo "## ammalloc-run --profile (the peak), --timeline, --flamegraph"
rm -f "$out"/torch.*.heap
# In-use profiles every 16 MiB: the one shown is within 16 MiB of the true peak.
"$run" --profile "$out/torch" --set HEAP_PROFILE_INUSE_INTERVAL=16M --top 10 \
  --timeline "$out/timeline.csv" --interval 100 --flamegraph "$out/flame.svg" -- "${prog[@]}" 2>&1 |
  grep -v '^ammalloc: heap profile '
if command -v rsvg-convert >/dev/null; then
  rsvg-convert "$out/timeline.svg" -o "$out/timeline.png"
  rsvg-convert "$out/flame.svg" -o "$out/flame.png"
  echo "PNG: $out/timeline.png $out/flame.png"
fi
echo
echo "## CMake consumer against meson install --destdir"
bash test/install/install.sh "$build" . "$(sed -n "s/^ *version: *'\([0-9.]*\)'.*/\1/p" meson.build | head -n 1)"

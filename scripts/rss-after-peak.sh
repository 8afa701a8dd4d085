#!/usr/bin/env bash
# RSS over time after a 1 GiB peak (test/bench/peak_rss.c), with no allocator
# API call, for glibc, ammalloc, jemalloc, mimalloc and tcmalloc side by side.
# ammalloc runs with its defaults unless AMMALLOC_* variables are set in the
# environment (e.g. AMMALLOC_RELEASE_DELAY_MS=1000).
# Usage: scripts/rss-after-peak.sh [seconds=12] [MiB=1024]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-12}; mib=${2:-1024}
scripts/deps.sh libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
scripts/build.sh build --buildtype=release
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
gcc -O2 -pthread test/bench/peak_rss.c -o "$out/peak_rss"
libdir=$(dirname "$(readlink -f "$(ldconfig -p | awk '/libc\.so\.6 /{print $NF; exit}')")")
declare -A libs=([glibc]="" [ammalloc]="$PWD/build/libammalloc.so"
  [jemalloc]="$(ls "$libdir"/libjemalloc.so.2 2>/dev/null || true)"
  [mimalloc]="$(ls "$libdir"/libmimalloc.so.2* 2>/dev/null | head -n 1 || true)"
  [tcmalloc]="$(ls "$libdir"/libtcmalloc_minimal.so.4 2>/dev/null || true)")
order=(glibc ammalloc jemalloc mimalloc tcmalloc)
for a in "${order[@]}"; do
  if [ "$a" != glibc ] && [ -z "${libs[$a]}" ]; then echo "$a: not installed" >&2; continue; fi
  env ${libs[$a]:+LD_PRELOAD=${libs[$a]}} "$out/peak_rss" "$secs" "$mib" > "$out/$a.txt"
done
printf '| t (s) |'; for a in "${order[@]}"; do [ -f "$out/$a.txt" ] && printf ' %s |' "$a"; done; echo
printf '|---|'; for a in "${order[@]}"; do [ -f "$out/$a.txt" ] && printf -- '---|'; done; echo
for key in baseline_mib peak_mib; do
  printf '| %s |' "${key%_mib}"
  for a in "${order[@]}"; do [ -f "$out/$a.txt" ] && printf ' %s |' "$(sed -n "s/^$key=//p" "$out/$a.txt")"; done; echo
done
for t in $(sed -n 's/^t=\([0-9.]*\) .*/\1/p' "$out/glibc.txt" | awk 'NR%4==1'); do
  printf '| %s |' "$t"
  for a in "${order[@]}"; do [ -f "$out/$a.txt" ] && printf ' %s |' "$(awk -v t="t=$t" '$1==t{sub("rss_mib=","",$2); print $2}' "$out/$a.txt")"; done; echo
done
echo "(MiB; one sample per second shown, taken every 250 ms)"

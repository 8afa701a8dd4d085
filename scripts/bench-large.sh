#!/usr/bin/env bash
# bench-large.sh — large buffers: ammalloc against glibc, jemalloc, mimalloc and
# tcmalloc, side by side in one run: wall time, peak RSS and minor page faults.
#
# Rows (programs of test/bench/, built like scripts/bench.sh builds them):
#   largechurn  per step 8 KV-cache blocks of 2 MiB + activations 0.5..64 MiB,
#               the same sizes again next step (a faulted-in page reused = no
#               fault; a page given back and taken again = a fault)
#   inference   per step 64 B-aligned activations 4 KiB..16 MiB + metadata
#   large       random 64 KiB..64 MiB buffers, 4 live per thread
# Each allocator is preloaded the same way (LD_PRELOAD; glibc preloads its own
# libc.so.6). Repetitions are interleaved (allocator order rotating per rep);
# cells are medians with the ratio to the best PEER of the row (never
# ammalloc) in parentheses. Minor faults come from /usr/bin/time (%R).
#
# usage: scripts/bench-large.sh [--reps N (3)] [--scale X (1)] [--threads N (2)]
#                               [--lib PATH (build/libammalloc.so)] [--only ROW...] [--quick]
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

ROWS=(largechurn inference large)
ALLOCS=(glibc ammalloc jemalloc mimalloc tcmalloc)
PEERS=" glibc jemalloc mimalloc tcmalloc "
REPS=3
SCALE=1
THREADS=2
LIB=build/libammalloc.so
ONLY=()

die() { echo "bench-large.sh: $*" >&2; exit 2; }
note() { echo "bench-large.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --lib) LIB=$2; shift 2 ;;
    --quick) REPS=1; SCALE=0.1; shift ;;
    --only) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do ONLY+=("$1"); shift; done ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
[ ${#ONLY[@]} -gt 0 ] && ROWS=("${ONLY[@]}")
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"

if [ ! -f "$LIB" ]; then
  note "building ammalloc ($LIB missing) ..."
  { [ -f build/build.ninja ] || meson setup build --buildtype=release; } >/dev/null && ninja -C build >/dev/null ||
    die "build failed"
fi
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")

declare -A LIBS
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
find_lib() {
  local g d f
  for g in "$@"; do
    for d in /usr/lib/$multiarch /lib/$multiarch /usr/lib64 /usr/lib; do
      for f in "$d"/$g; do [ -e "$f" ] && { echo "$f"; return 0; }; done
    done
  done
  return 1
}
LIBS[glibc]=$(find_lib libc.so.6) || true
LIBS[ammalloc]=$LIB
LIBS[jemalloc]=$(find_lib libjemalloc.so.2) || true
LIBS[mimalloc]=$(find_lib libmimalloc.so.2 'libmimalloc.so.2.*') || true
LIBS[tcmalloc]=$(find_lib libtcmalloc_minimal.so.4) || true
RUN=()
for a in "${ALLOCS[@]}"; do
  if [ -n "${LIBS[$a]:-}" ]; then RUN+=("$a"); else note "$a: not installed, n/a"; fi
done

BB=build-bench
mkdir -p "$BB"
for r in "${ROWS[@]}"; do
  src=test/bench/$r.cc
  [ -f "$src" ] || die "no program $src"
  if [ ! -x "$BB/$r" ] || [ "$src" -nt "$BB/$r" ] || [ test/bench/bench_common.h -nt "$BB/$r" ]; then
    g++ -O2 -std=c++20 -pthread -Wall -o "$BB/$r" "$src" 2>"$BB/$r.log" || die "build of $r failed ($BB/$r.log)"
  fi
done

OUT=bench-out
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$OUT/bench-large-$STAMP.tsv
TF=$(mktemp)
trap 'rm -f "$TF"' EXIT
printf 'bench\talloc\trep\tstatus\twall_s\tmaxrss_kib\tminflt\n' >"$RAW"
note "rows: ${ROWS[*]}; allocators: ${RUN[*]}; reps $REPS, scale $SCALE, threads $THREADS"
n=${#RUN[@]}
for r in "${ROWS[@]}"; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for ((k = 0; k < n; k++)); do
      a=${RUN[$(((k + rep - 1) % n))]}
      st=ok
      if ! /usr/bin/time -f '%e %M %R' -o "$TF" env LD_PRELOAD="${LIBS[$a]}" "$BB/$r" "$SCALE" "$THREADS" \
           >/dev/null 2>"$OUT/bench-large-$STAMP-$r-$a.stderr"; then
        st=FAIL
      fi
      read -r wall rss flt < <(tail -n1 "$TF")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$a" "$rep" "$st" "$wall" "$rss" "$flt" >>"$RAW"
      note "$r rep $rep $a: $st ${wall}s ${rss}KiB ${flt} minor faults"
      [ "$st" = ok ] && rm -f "$OUT/bench-large-$STAMP-$r-$a.stderr"
    done
  done
done

{
  echo "ammalloc large-buffer benchmarks: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, reps $REPS (median), scale $SCALE, threads $THREADS"
  echo
  awk -F'\t' -v rows="${ROWS[*]}" -v allocs="${RUN[*]}" -v peers="$PEERS" '
    function median(s,    a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function cell(v, best, fmt) { return best > 0 ? sprintf(fmt " (%.2f)", v, v / best) : sprintf(fmt, v) }
    NR == 1 { next }
    { k = $1 SUBSEP $2; if ($4 != "ok") { fail[k] = 1; next } w[k] = w[k] " " $5; m[k] = m[k] " " $6; f[k] = f[k] " " $7 }
    END {
      nr = split(rows, R, " "); na = split(allocs, A, " ")
      split("time s|peak RSS MiB|minor faults", title, "|")
      for (q = 1; q <= 3; q++) {
        hdr = "| " title[q] " |"; sep = "|---|"
        for (i = 1; i <= na; i++) { hdr = hdr " " A[i] " |"; sep = sep "---:|" }
        print hdr; print sep
        for (j = 1; j <= nr; j++) {
          best = 0
          for (i = 1; i <= na; i++) {
            k = R[j] SUBSEP A[i]
            if (k in fail || !(k in w)) continue
            v[i] = median(q == 1 ? w[k] : q == 2 ? m[k] : f[k]) + 0
            if (q == 2) v[i] /= 1024
            if (index(peers, " " A[i] " ") && (best == 0 || v[i] < best)) best = v[i]
          }
          line = "| " R[j] " |"
          for (i = 1; i <= na; i++) {
            k = R[j] SUBSEP A[i]
            if (k in fail) { line = line " FAIL |"; continue }
            if (!(k in w)) { line = line " – |"; continue }
            line = line " " cell(v[i], best, q == 1 ? "%.3f" : q == 2 ? "%.1f" : "%d") " |"
          }
          print line
        }
        print ""
      }
      print "Ratios (in parentheses) are to the best peer of the row: glibc, jemalloc, mimalloc, tcmalloc; ammalloc excluded."
    }' "$RAW"
} | tee "$OUT/bench-large-$STAMP.md"
cp "$RAW" "$OUT/bench-large-latest.tsv"
cp "$OUT/bench-large-$STAMP.md" "$OUT/bench-large-latest.md"
note "raw numbers: $RAW"

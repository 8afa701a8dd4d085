#!/usr/bin/env bash
# fastpath-cost.sh — instructions per malloc+free pair, counted exactly with
# `valgrind --tool=callgrind`, for ammalloc and each peer (glibc, jemalloc,
# mimalloc, tcmalloc), each preloaded the same way (LD_PRELOAD; the glibc column
# preloads glibc's own libc.so.6).
#
# test/bench/fastpath.cc does a warm-up and then N malloc(SIZE)+free pairs; it
# runs twice per allocator, with N and 2N pairs, and the cost of one pair is
# (Ir(2N) - Ir(N)) / N: start-up, warm-up and exit cancel out.  The count
# includes the call and return and the few instructions of the loop itself
# (shown separately as "bare loop", measured the same way).
#
# usage: scripts/fastpath-cost.sh [--lib PATH] [--size BYTES] [--iters N]
#                                 [--api malloc|new|sized] [--allocs a,b,...]
#                                 [--annotate] [--no-install]
#   --lib PATH     the ammalloc shared object (default build/libammalloc.so,
#                  built with meson/ninja if missing)
#   --size BYTES   allocation size (default 64)
#   --iters N      N (default 1000000)
#   --api A        malloc (default): malloc+free; new: operator new+delete;
#                  sized: operator new + sized operator delete
#   --annotate     also print callgrind_annotate's top functions of the 2N run
#                  for each allocator (where the instructions go)
# Prints a markdown table on stdout; callgrind files are kept in
# bench-out/fastpath/.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

ALL_ALLOCS=(glibc ammalloc jemalloc mimalloc tcmalloc)
LIB=""
SIZE=64
ITERS=1000000
API=malloc
ALLOCS_OPT=""
ANNOTATE=0
INSTALL=1

die() { echo "fastpath-cost.sh: $*" >&2; exit 2; }
note() { echo "fastpath-cost.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --lib) [ $# -ge 2 ] || die "--lib needs a path"; LIB=$2; shift 2 ;;
    --lib=*) LIB=${1#*=}; shift ;;
    --size) [ $# -ge 2 ] || die "--size needs a number"; SIZE=$2; shift 2 ;;
    --size=*) SIZE=${1#*=}; shift ;;
    --iters) [ $# -ge 2 ] || die "--iters needs a number"; ITERS=$2; shift 2 ;;
    --iters=*) ITERS=${1#*=}; shift ;;
    --api) [ $# -ge 2 ] || die "--api needs a value"; API=$2; shift 2 ;;
    --api=*) API=${1#*=}; shift ;;
    --allocs) [ $# -ge 2 ] || die "--allocs needs a list"; ALLOCS_OPT=$2; shift 2 ;;
    --allocs=*) ALLOCS_OPT=${1#*=}; shift ;;
    --annotate) ANNOTATE=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$SIZE" =~ ^[1-9][0-9]*$ ]] || die "--size must be a positive integer"
[[ "$ITERS" =~ ^[1-9][0-9]*$ ]] || die "--iters must be a positive integer"
case "$API" in malloc|new|sized) ;; *) die "--api must be malloc, new or sized" ;; esac

ALLOCS=()
if [ -z "$ALLOCS_OPT" ]; then ALLOCS=("${ALL_ALLOCS[@]}")
else
  for a in ${ALLOCS_OPT//,/ }; do
    case " ${ALL_ALLOCS[*]} " in *" $a "*) ALLOCS+=("$a") ;; *) die "unknown allocator '$a'" ;; esac
  done
fi
want_alloc() { case " ${ALLOCS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

. "$ROOT/scripts/lib/allocators.sh"

command -v valgrind >/dev/null || ensure_pkgs valgrind || true
command -v valgrind >/dev/null || die "valgrind is missing (Debian package 'valgrind')"
command -v g++ >/dev/null || ensure_pkgs g++ || die "g++ is missing"

# ------------------------------------------------------------- allocators --
find_peers
OUT=bench-out/fastpath
mkdir -p "$OUT"
find_ammalloc

# ---------------------------------------------------------------- program --
BB=build-bench
mkdir -p "$BB"
PROG=$BB/fastpath
if [ ! -x "$PROG" ] || [ test/bench/fastpath.cc -nt "$PROG" ]; then
  g++ -O2 -std=c++20 -Wall -o "$PROG" test/bench/fastpath.cc 2>"$BB/fastpath.log" ||
    die "building $PROG failed, see $BB/fastpath.log"
fi

# ir PRELOAD N API TAG -> total instructions (Ir) of one callgrind run
ir() {
  local pre=$1 n=$2 api=$3 tag=$4 f
  f=$OUT/callgrind.$tag.$n.out
  rm -f "$f"
  if ! LD_PRELOAD=$pre valgrind --tool=callgrind --callgrind-out-file="$f" \
        "$ROOT/$PROG" "$n" "$SIZE" "$api" >"$OUT/valgrind.$tag.$n.log" 2>&1; then
    return 1
  fi
  awk '/^(summary|totals):/ { print $2; exit }' "$f"
}

# per_pair PRELOAD API TAG -> instructions per iteration with 3 decimals
per_pair() {
  local a b
  a=$(ir "$1" "$ITERS" "$2" "$3") || return 1
  b=$(ir "$1" "$((2 * ITERS))" "$2" "$3") || return 1
  [ -n "$a" ] && [ -n "$b" ] || return 1
  awk -v a="$a" -v b="$b" -v n="$ITERS" 'BEGIN { printf "%.1f", (b - a) / n }'
}

note "size $SIZE, api $API, N=$ITERS and 2N under callgrind; this takes a minute or two"
loop_cost=$(per_pair "" none loop) || loop_cost="?"

declare -A COST
for a in "${ALLOCS[@]}"; do
  if [ -z "${LIBS[$a]:-}" ]; then COST[$a]="n/a"; continue; fi
  if c=$(per_pair "${LIBS[$a]}" "$API" "$a"); then COST[$a]=$c; else COST[$a]=FAIL; fi
  note "$a: ${COST[$a]} instructions per pair"
done

best_peer=""
for a in glibc jemalloc mimalloc tcmalloc; do
  c=${COST[$a]:-}
  [[ "$c" =~ ^[0-9.]+$ ]] || continue
  if [ -z "$best_peer" ] || awk -v x="$c" -v y="$best_peer" 'BEGIN { exit !(x < y) }'; then best_peer=$c; fi
done

case "$API" in
  malloc) what="malloc($SIZE) + free" ;;
  new) what="operator new($SIZE) + operator delete" ;;
  sized) what="operator new($SIZE) + sized operator delete" ;;
esac
echo "Instructions per $what pair (callgrind, (Ir(2N) - Ir(N)) / N, N = $ITERS; call, return and loop included)"
echo
echo "| allocator | instructions / pair | × best peer |"
echo "|---|---:|---:|"
for a in "${ALLOCS[@]}"; do
  c=${COST[$a]}
  r="–"
  if [[ "$c" =~ ^[0-9.]+$ ]] && [ -n "$best_peer" ]; then
    r=$(awk -v x="$c" -v y="$best_peer" 'BEGIN { printf "%.2f", x / y }')
  fi
  echo "| $a | $c | $r |"
done
echo
echo "The bare loop (no allocation) costs $loop_cost instructions per iteration; it is included above."
for a in "${ALLOCS[@]}"; do
  if [ -n "${NA_WHY[$a]:-}" ]; then echo "- $a: n/a (${NA_WHY[$a]})"; fi
done

if [ $ANNOTATE = 1 ] && command -v callgrind_annotate >/dev/null; then
  for a in "${ALLOCS[@]}"; do
    f=$OUT/callgrind.$a.$((2 * ITERS)).out
    [ -f "$f" ] || continue
    echo
    echo "### $a: top functions, 2N run"
    echo '```'
    callgrind_annotate "$f" 2>/dev/null |
      awk '/file:function/ { on = 1; getline; next } on && /^ *$/ { exit } on && n++ < 12'
    echo '```'
  done
fi

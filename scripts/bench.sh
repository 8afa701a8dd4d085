#!/usr/bin/env bash
# bench.sh — ammalloc against glibc, jemalloc, mimalloc and tcmalloc.
#
# Runs every benchmark under every allocator, each preloaded the same way
# (LD_PRELOAD=<lib>; the glibc column preloads glibc's own libc.so.6, which is
# the same as no preload for ordinary programs and makes glibc's malloc win over
# an allocator a program links itself, e.g. Debian's redis-server + jemalloc).
# Repetitions are interleaved (for each benchmark: rep 1 = every allocator,
# rep 2 = every allocator again, ..., the allocator order rotating per rep); the
# table shows the median wall time and the median peak RSS, each with its ratio
# to the best PEER of the row (glibc/jemalloc/mimalloc/tcmalloc, never
# ammalloc), and a last row with the geometric mean of those ratios.  A '~'
# after a cell marks a noisy one: its repetitions' spread (max - min) / median
# is above 30% (NOISY below); a legend line says so when one is marked.
#
# Rows (test/bench/README.md describes each program): micro programs built with
# g++ into build-bench/ (pairs-64 ... threadchurn; manythreads-64 and
# manythreads-256 run test/bench/manythreads.cc with 64 / 256 threads and the
# same total work, whatever --threads says; kvchurn pushes 9 GiB x scale of
# 256 KiB..4 MiB aligned blocks through a 2 GiB x scale LRU cache), real
# programs (python gxx sqlite redis torch) and the engine layer's rows (kv-*,
# arena-*, from the meson build of --lib).
#
# usage: scripts/bench.sh [--quick] [--reps N] [--only NAME...] [--lib PATH]
#                         [--allocs a,b,...] [--threads N] [--scale X]
#                         [--env KEY=VALUE]... [--no-install] [--list]
#   --quick        CI smoke run: 1 repetition, small scale (micro scale 0.1)
#   --reps N       interleaved repetitions (default 3; 5 for a table to rely on)
#   --only NAME..  only these benchmarks (names: see --list)
#   --lib PATH     the ammalloc shared object to test (default build/libammalloc.so,
#                  built with meson/ninja if missing)
#   --allocs LIST  comma-separated subset of: glibc,ammalloc,jemalloc,mimalloc,tcmalloc,
#                  ammalloc-harden (the same library with AMMALLOC_HARDEN=1; not in
#                  the default set, never a peer: for the cost of hardening)
#   --threads N    worker threads of the multi-threaded micro benchmarks (default 4;
#                  not manythreads-N, which always runs N)
#   --scale X      scale of the micro benchmarks (default 1, --quick 0.1; kvchurn's
#                  volume and budget scale with it: ~2.5 GiB resident at 1)
#   --env K=V      set K=V in every benchmark's environment (repeatable), e.g.
#                  --env AMMALLOC_TRANSFER_CACHE=0 (AMMALLOC_* only affects ammalloc)
#   --no-install   never call apt-get; rows/allocators whose tools are missing are skipped
#   --spans [N..]  instead of the rows: test/bench/pageheap_spans (large malloc+free
#                  with N free large holes; default N = 100 1000 10000 100000) under
#                  every allocator, a table of us per pair (no fit / fit; medians of --reps interleaved runs), and the
#                  page-heap lock hold time from the meson build's core-linked copy
#
# Output: the markdown table on stdout; progress on stderr; raw numbers (one line
# per run) in bench-out/bench-<stamp>.tsv, the table in bench-out/bench-<stamp>.md
# (and bench-out/latest.{tsv,md}).  A crash, a timeout, a wrong result or an
# output different from the glibc run shows as FAIL in that cell.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

ALL_ROWS=(pairs-64 pairs-mixed churn xthread larson falseshare large largechurn kvchurn realloc-growth inference
          threadchurn manythreads-64 manythreads-256 python gxx sqlite redis torch kv-seed kv-pool arena-malloc arena-step)
ALL_ALLOCS=(glibc ammalloc jemalloc mimalloc tcmalloc ammalloc-harden)
DEFAULT_ALLOCS=(glibc ammalloc jemalloc mimalloc tcmalloc)
PEERS=" glibc jemalloc mimalloc tcmalloc "

QUICK=0
REPS=3
REPS_SET=0
ONLY=()
LIB=""
ALLOCS_OPT=""
THREADS=4
SCALE=""
INSTALL=1
EXTRA_ENV=()
SPANS=0
SPANS_N=()

die() { echo "bench.sh: $*" >&2; exit 2; }
note() { echo "bench.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; REPS_SET=1; shift 2 ;;
    --reps=*) REPS=${1#*=}; REPS_SET=1; shift ;;
    --lib) [ $# -ge 2 ] || die "--lib needs a path"; LIB=$2; shift 2 ;;
    --lib=*) LIB=${1#*=}; shift ;;
    --allocs) [ $# -ge 2 ] || die "--allocs needs a list"; ALLOCS_OPT=$2; shift 2 ;;
    --allocs=*) ALLOCS_OPT=${1#*=}; shift ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a number"; THREADS=$2; shift 2 ;;
    --scale) [ $# -ge 2 ] || die "--scale needs a number"; SCALE=$2; shift 2 ;;
    --env) [ $# -ge 2 ] || die "--env needs KEY=VALUE"; EXTRA_ENV+=("$2"); shift 2 ;;
    --env=*) EXTRA_ENV+=("${1#*=}"); shift ;;
    --no-install) INSTALL=0; shift ;;
    --spans)
      SPANS=1; shift
      while [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; do SPANS_N+=("$1"); shift; done ;;
    --list) printf '%s\n' "${ALL_ROWS[@]}"; exit 0 ;;
    --only)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do ONLY+=("${1//,/ }"); shift; done
      [ ${#ONLY[@]} -gt 0 ] || die "--only needs at least one name" ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done

[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
for kv in ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"}; do
  [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs KEY=VALUE, got '$kv'"
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
if [ $QUICK = 1 ] && [ $REPS_SET = 0 ]; then REPS=1; fi
if [ -z "$SCALE" ]; then
  if [ $QUICK = 1 ]; then SCALE=0.1; else SCALE=1; fi
fi
[[ "$SCALE" =~ ^[0-9]*\.?[0-9]+$ ]] || die "--scale must be a positive number"

# Rows to run, in the canonical order.
ROWS=()
if [ ${#ONLY[@]} -eq 0 ]; then
  ROWS=("${ALL_ROWS[@]}")
else
  for want in ${ONLY[*]}; do
    ok=0
    for r in "${ALL_ROWS[@]}"; do [ "$r" = "$want" ] && ok=1; done
    [ $ok = 1 ] || die "unknown benchmark '$want' (known: ${ALL_ROWS[*]})"
  done
  for r in "${ALL_ROWS[@]}"; do
    for want in ${ONLY[*]}; do [ "$r" = "$want" ] && ROWS+=("$r"); done
  done
fi
has_row() { local r; for r in "${ROWS[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

ALLOCS=()
if [ -z "$ALLOCS_OPT" ]; then
  ALLOCS=("${DEFAULT_ALLOCS[@]}")
else
  for a in "${ALL_ALLOCS[@]}"; do
    case ",$ALLOCS_OPT," in *",$a,"*) ALLOCS+=("$a") ;; esac
  done
  for a in ${ALLOCS_OPT//,/ }; do
    case " ${ALL_ALLOCS[*]} " in *" $a "*) ;; *) die "unknown allocator '$a'" ;; esac
  done
fi

# ---------------------------------------------------------------- packages --
. "$ROOT/scripts/lib/allocators.sh"

ensure_pkgs time coreutils || true
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
command -v g++ >/dev/null || ensure_pkgs g++ || die "g++ is missing"

# ------------------------------------------------------------------ output --
OUT=bench-out
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$OUT/bench-$STAMP.tsv"
MD="$OUT/bench-$STAMP.md"
WORK=$(mktemp -d "$ROOT/$OUT/work.XXXXXX") || die "cannot create a work dir"
REDIS_PID=""
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- allocators --
find_peers
find_ammalloc
for a in "${ALLOCS[@]}"; do
  if [ -n "${NA_WHY[$a]:-}" ]; then note "$a: n/a (${NA_WHY[$a]})"; fi
done

# ---------------------------------------------------------- micro programs --
BB=build-bench
mkdir -p "$BB"
build_prog() {  # build_prog NAME -> 0 if $BB/NAME is up to date
  local name=$1 src=test/bench/$1.cc
  [ -f "$src" ] || { note "missing $src"; return 1; }
  if [ ! -x "$BB/$name" ] || [ "$src" -nt "$BB/$name" ] || [ test/bench/bench_common.h -nt "$BB/$name" ]; then
    note "building $BB/$name"
    g++ -O2 -std=c++20 -pthread -Wall -o "$BB/$name" "$src" 2>"$BB/$name.log" ||
      { note "build of $name failed, see $BB/$name.log"; return 1; }
  fi
  return 0
}

# ----------------------------------------------------------------- the rows --
PY=/usr/bin/python3
# The engine layer's program lives in the meson build of the library measured.
ENGINE_BENCH=$(cd "$(dirname "${LIB:-build/libammalloc.so}")" 2>/dev/null && pwd)/test/engine_bench
declare -A SKIP_WHY
ROW_KIND=""   # "cmd" or "redis"
CMD=()

micro_prog() {
  case "$1" in
    pairs-64) echo pairs_fixed ;; pairs-mixed) echo pairs_mixed ;; realloc-growth) echo realloc_growth ;;
    manythreads-*) echo manythreads ;;
    churn|xthread|larson|falseshare|large|largechurn|kvchurn|inference|threadchurn) echo "$1" ;;
    *) return 1 ;;
  esac
}

if has_row python || has_row gxx || has_row sqlite || has_row torch || has_row redis; then
  [ -x $PY ] || ensure_pkgs python3 || true
fi
if [ $QUICK = 1 ]; then
  PY_SCALE=0.1; GXX_FUNCS=1; SQL_SCALE=0.1; REDIS_N=10000; TORCH_SCALE=0.1
else
  PY_SCALE=1; GXX_FUNCS=10; SQL_SCALE=1; REDIS_N=60000; TORCH_SCALE=1
fi

prepare_row() {  # prepare_row NAME: untimed set-up; sets SKIP_WHY[NAME] if impossible
  local r=$1 prog
  if prog=$(micro_prog "$r"); then
    build_prog "$prog" || SKIP_WHY[$r]="build failed"
    return
  fi
  case "$r" in
    python)
      [ -x $PY ] || SKIP_WHY[$r]="$PY missing" ;;
    gxx)
      if [ ! -x $PY ]; then SKIP_WHY[$r]="$PY missing"; return; fi
      $PY test/bench/gen_cpp.py $GXX_FUNCS >"$WORK/gen.cc" || SKIP_WHY[$r]="generator failed" ;;
    sqlite)
      if [ ! -x $PY ]; then SKIP_WHY[$r]="$PY missing"; return; fi
      command -v sqlite3 >/dev/null || ensure_pkgs sqlite3 || true
      command -v sqlite3 >/dev/null || { SKIP_WHY[$r]="sqlite3 not installed"; return; }
      $PY test/bench/gen_sql.py $SQL_SCALE >"$WORK/bench.sql" || SKIP_WHY[$r]="generator failed" ;;
    redis)
      if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null ||
         ! command -v redis-cli >/dev/null; then
        ensure_pkgs redis-server redis-tools || true
      fi
      if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        SKIP_WHY[$r]="redis-server/redis-tools not installed"
      fi ;;
    kv-seed|kv-pool|arena-malloc|arena-step)
      # The engine layer's rows (test/bench/engine_bench.cc) link the library
      # itself, so they come from the meson build, not from g++ alone.
      [ -x "$ENGINE_BENCH" ] || { [ -f "${ENGINE_BENCH%/test/engine_bench}/build.ninja" ] &&
        ninja -C "${ENGINE_BENCH%/test/engine_bench}" test/engine_bench >/dev/null 2>&1; }
      [ -x "$ENGINE_BENCH" ] || SKIP_WHY[$r]="$ENGINE_BENCH missing (meson build of test/engine_bench)" ;;
    torch)
      if [ ! -x $PY ]; then SKIP_WHY[$r]="$PY missing"; return; fi
      if ! $PY -c 'import torch' >/dev/null 2>&1 && [ $QUICK = 0 ]; then
        ensure_pkgs python3-torch || true
      fi
      $PY -c 'import torch' >/dev/null 2>&1 ||
        SKIP_WHY[$r]="torch not importable by $PY (Debian package python3-torch$([ $QUICK = 1 ] && echo '; --quick does not install it'))" ;;
  esac
}

set_cmd() {  # set_cmd NAME -> ROW_KIND, CMD
  local r=$1 prog
  ROW_KIND=cmd
  if prog=$(micro_prog "$r"); then
    # manythreads-N runs N threads whatever --threads says.
    case "$r" in manythreads-*) CMD=("$ROOT/$BB/$prog" "$SCALE" "${r#manythreads-}") ;;
                 *) CMD=("$ROOT/$BB/$prog" "$SCALE" "$THREADS") ;; esac
    return
  fi
  case "$r" in
    python) CMD=($PY "$ROOT/test/bench/py_workload.py" $PY_SCALE) ;;
    gxx) CMD=(g++ -O2 -std=c++17 -o "$WORK/gen.bin" "$WORK/gen.cc") ;;
    sqlite) CMD=(sqlite3 -batch -init /dev/null :memory: ".read $WORK/bench.sql") ;;
    torch) CMD=($PY "$ROOT/test/bench/torch_infer.py" $TORCH_SCALE) ;;
    kv-seed|kv-pool|arena-malloc|arena-step) CMD=("$ENGINE_BENCH" "$r" "$SCALE") ;;
    redis) ROW_KIND=redis; CMD=() ;;
  esac
}

# digest NAME STDOUT-FILE -> a short string that must be equal for every allocator
digest() {
  local r=$1 f=$2
  if micro_prog "$r" >/dev/null; then
    grep -m1 '^result: [0-9]* ops in ' "$f" | sed 's/ in .*//' ; return
  fi
  case "$r" in
    kv-seed|kv-pool|arena-malloc|arena-step) grep -m1 '^result: [0-9]* ops in ' "$f" | sed 's/ in .*//' ;;
    gxx) [ -x "$WORK/gen.bin" ] && "$WORK/gen.bin" 2>&1 | md5sum | cut -c1-12; rm -f "$WORK/gen.bin" ;;
    redis) cat "$f" ;;
    *) [ -s "$f" ] && md5sum <"$f" | cut -c1-12 ;;
  esac
}

TIMEOUT=600
NOISY=0.30   # a cell whose reps spread by more than this fraction of the median gets a '~'
[ $QUICK = 1 ] && TIMEOUT=180

# Result of the last run: STATUS (ok/FAIL:why), WALL (s), RSS (KiB), DIG
STATUS="" WALL="" RSS="" DIG=""

run_cmd() {  # run_cmd ALLOC
  local a=$1 pre=${LIBS[$1]} t0 t1 rc
  local aenv=(); [ "$a" = ammalloc-harden ] && aenv=(AMMALLOC_HARDEN=1)
  local out=$WORK/out err=$WORK/err tf=$WORK/time
  rm -f "$tf"
  t0=$EPOCHREALTIME
  (cd "$WORK" && exec timeout -k 5 $TIMEOUT /usr/bin/time -f '%e %M' -o "$tf" \
      env LD_PRELOAD="$pre" ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"} ${aenv[@]+"${aenv[@]}"} "${CMD[@]}") >"$out" 2>"$err" </dev/null
  rc=$?
  t1=$EPOCHREALTIME
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
  RSS=$(tail -n1 "$tf" 2>/dev/null | awk '{ print $2 }')
  DIG=$(digest "$ROW" "$out")
  if [ $rc = 124 ] || [ $rc = 137 ]; then STATUS="FAIL:timeout"
  elif [ $rc != 0 ]; then STATUS="FAIL:exit-$rc"
  elif [ -z "$DIG" ]; then STATUS="FAIL:no-result"
  else STATUS=ok; fi
  if [ "$STATUS" != ok ]; then
    cp "$err" "$OUT/fail-$STAMP-$ROW-$a.stderr" 2>/dev/null
    cp "$out" "$OUT/fail-$STAMP-$ROW-$a.stdout" 2>/dev/null
  fi
}

free_port() {
  $PY - <<'EOF' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

run_redis() {  # run_redis ALLOC: server preloaded on 127.0.0.1, driven by redis-benchmark
  local a=$1 pre=${LIBS[$1]} port t0 t1 rc i ok
  local aenv=(); [ "$a" = ammalloc-harden ] && aenv=(AMMALLOC_HARDEN=1)
  local tf=$WORK/time out=$WORK/out
  rm -f "$tf"
  port=$(free_port)
  (cd "$WORK" && exec timeout -k 5 $TIMEOUT /usr/bin/time -f '%e %M' -o "$tf" \
      env LD_PRELOAD="$pre" ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"} ${aenv[@]+"${aenv[@]}"} redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
      --save '' --appendonly no --daemonize no --dir "$WORK" --loglevel warning) \
      >"$WORK/redis.log" 2>&1 </dev/null &
  REDIS_PID=$!
  ok=0
  for i in $(seq 1 100); do
    if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then ok=1; break; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  STATUS=ok DIG="" WALL="" RSS=""
  if [ $ok = 1 ]; then
    t0=$EPOCHREALTIME
    timeout $TIMEOUT redis-benchmark -h 127.0.0.1 -p "$port" -q -n $REDIS_N -r 100000 \
      -t set,get,lpush,lpop >"$out" 2>&1 </dev/null
    rc=$?
    t1=$EPOCHREALTIME
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    # Each test prints "NAME: N requests per second"; the data must still be there.
    local lines check
    lines=$(tr '\r' '\n' <"$out" | grep -cE '^(SET|GET|LPUSH|LPOP): .*requests per second')
    check=$(timeout 5 redis-cli -h 127.0.0.1 -p "$port" set bench:check v1 2>/dev/null;
            timeout 5 redis-cli -h 127.0.0.1 -p "$port" get bench:check 2>/dev/null)
    if [ $rc != 0 ]; then STATUS="FAIL:benchmark-exit-$rc"
    elif [ "$lines" != 4 ]; then STATUS="FAIL:benchmark-output"
    elif [ "$(echo $check)" != "OK v1" ]; then STATUS="FAIL:data-check"
    else DIG="4-tests-ok"; fi
    timeout 10 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1
  else
    STATUS="FAIL:server-did-not-start"
  fi
  # Bounded wait for the server; then make sure it is gone.
  for i in $(seq 1 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$REDIS_PID" 2>/dev/null; then
    kill "$REDIS_PID" 2>/dev/null
    [ "$STATUS" = ok ] && STATUS="FAIL:server-did-not-stop"
  fi
  wait "$REDIS_PID" 2>/dev/null
  rc=$?
  REDIS_PID=""
  if [ "$STATUS" = ok ] && [ $rc != 0 ]; then STATUS="FAIL:server-exit-$rc"; fi
  RSS=$(tail -n1 "$tf" 2>/dev/null | awk '{ print $2 }')
  if [ "$STATUS" != ok ]; then
    cp "$WORK/redis.log" "$OUT/fail-$STAMP-redis-$a.log" 2>/dev/null
    cp "$out" "$OUT/fail-$STAMP-redis-$a.stdout" 2>/dev/null
  fi
}

# -------------------------------------------------------------------- main --
RUN_ALLOCS=()
for a in "${ALLOCS[@]}"; do [ -n "${LIBS[$a]:-}" ] && RUN_ALLOCS+=("$a"); done
[ ${#RUN_ALLOCS[@]} -gt 0 ] || die "no allocator available"

# ------------------------------------------------------- --spans (issue 13) --
if [ $SPANS = 1 ]; then
  [ ${#SPANS_N[@]} -gt 0 ] || SPANS_N=(100 1000 10000 100000)
  build_prog pageheap_spans || die "cannot build pageheap_spans"
  # Interleaved repetitions (--reps, default 3): rep 1 of every allocator,
  # then rep 2, ... The machine's speed shifts between runs by up to 2x for
  # every allocator alike, so one run each can compare a fast run with a
  # slow one; the median of each cell, and a '~' where its reps spread by
  # more than NOISY, keep that out of the ratios.
  declare -A SP
  for rep in $(seq "$REPS"); do
    for a in "${RUN_ALLOCS[@]}"; do
      note "pageheap_spans under $a (rep $rep/$REPS) ..."
      aenv=(); [ "$a" = ammalloc-harden ] && aenv=(AMMALLOC_HARDEN=1)
      while read -r line; do
        n=$(sed -n 's/.*spans=\([0-9]*\).*/\1/p' <<<"$line")
        [ -n "$n" ] || continue
        SP[$a,$n,nofit]+="$(sed -n 's/.*nofit_us=\([^ ]*\).*/\1/p' <<<"$line") "
        SP[$a,$n,fit]+="$(sed -n 's/.* fit_us=\([^ ]*\).*/\1/p' <<<"$line") "
      done < <(cd "$WORK" && timeout -k 5 $TIMEOUT env LD_PRELOAD="${LIBS[$a]}" ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"} \
                 ${aenv[@]+"${aenv[@]}"} "$ROOT/$BB/pageheap_spans" "${SPANS_N[@]}" 2>/dev/null)
    done
  done
  # The median of a list of numbers, '~' appended if it spreads by more than NOISY.
  spans_cell() {
    [ -n "$1" ] || { printf 'FAIL'; return; }
    tr ' ' '\n' <<<"$1" | awk -v noisy=$NOISY 'NF { v[++n] = $1 } END {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "%.3f%s", m, (m > 0 && (v[n] - v[1]) / m > noisy) ? "~" : "" }'
  }
  {
    echo "pageheap_spans: us per malloc+free pair with N free large holes (no fit / fit), median of $REPS interleaved reps, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs"
    echo
    printf '| N |'; for a in "${RUN_ALLOCS[@]}"; do printf ' %s |' "$a"; done; echo
    printf '|---|'; for a in "${RUN_ALLOCS[@]}"; do printf -- '---|'; done; echo
    for n in "${SPANS_N[@]}"; do
      printf '| %s |' "$n"
      for a in "${RUN_ALLOCS[@]}"; do
        printf ' %s / %s |' "$(spans_cell "${SP[$a,$n,nofit]:-}")" "$(spans_cell "${SP[$a,$n,fit]:-}")"
      done
      echo
    done
    echo
    echo "~ after a cell: its repetitions spread by more than $(awk -v n=$NOISY 'BEGIN { print n * 100 }')% of their median."
    core=$(cd "$(dirname "${LIB:-build/libammalloc.so}")" 2>/dev/null && pwd)/test/pageheap_spans
    if [ -x "$core" ]; then
      echo
      echo "page-heap lock hold time (ammalloc core build, $core):"
      echo
      "$core" "${SPANS_N[@]}" | sed 's/^/    /'
    fi
  } | tee "$OUT/spans-$STAMP.md"
  exit 0
fi

printf 'bench\talloc\trep\tstatus\twall_s\tmaxrss_kib\n' >"$RAW"
note "rows: ${ROWS[*]}; allocators: ${RUN_ALLOCS[*]}; reps: $REPS; micro scale $SCALE, threads $THREADS"

for ROW in "${ROWS[@]}"; do
  prepare_row "$ROW"
  if [ -n "${SKIP_WHY[$ROW]:-}" ]; then note "$ROW: skipped (${SKIP_WHY[$ROW]})"; continue; fi
  set_cmd "$ROW"
  declare -A ROW_STATUS=() ROW_WALL=() ROW_RSS=() ROW_DIG=()
  n=${#RUN_ALLOCS[@]}
  for ((rep = 1; rep <= REPS; rep++)); do
    for ((k = 0; k < n; k++)); do
      a=${RUN_ALLOCS[$(((k + rep - 1) % n))]}
      if [ "$ROW_KIND" = redis ]; then run_redis "$a"; else run_cmd "$a"; fi
      ROW_STATUS[$a,$rep]=$STATUS ROW_WALL[$a,$rep]=$WALL ROW_RSS[$a,$rep]=$RSS ROW_DIG[$a,$rep]=$DIG
      note "$ROW rep $rep/$REPS $a: $STATUS ${WALL:-?} s ${RSS:-?} KiB"
    done
  done
  # Outputs must match the glibc run's (or, without glibc, the first successful run's).
  ref=""
  for a in glibc "${RUN_ALLOCS[@]}"; do
    for ((rep = 1; rep <= REPS; rep++)); do
      if [ "${ROW_STATUS[$a,$rep]:-}" = ok ]; then ref=${ROW_DIG[$a,$rep]}; break 2; fi
    done
  done
  for a in "${RUN_ALLOCS[@]}"; do
    for ((rep = 1; rep <= REPS; rep++)); do
      st=${ROW_STATUS[$a,$rep]}
      if [ "$st" = ok ] && [ "${ROW_DIG[$a,$rep]}" != "$ref" ]; then
        st="FAIL:output-differs"
        note "$ROW $a rep $rep: output differs from the reference (${ROW_DIG[$a,$rep]} vs $ref)"
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ROW" "$a" "$rep" "$st" "${ROW_WALL[$a,$rep]:-}" \
        "${ROW_RSS[$a,$rep]:-}" >>"$RAW"
    done
  done
  unset ROW_STATUS ROW_WALL ROW_RSS ROW_DIG
done

# ------------------------------------------------------------------- table --
{
  echo "ammalloc benchmarks: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, reps $REPS (median), micro scale $SCALE, threads $THREADS$([ $QUICK = 1 ] && echo ', --quick')$([ ${#EXTRA_ENV[@]} -gt 0 ] && echo ", env ${EXTRA_ENV[*]}")"
  echo
  awk -F'\t' -v rows="${ROWS[*]}" -v allocs="${ALLOCS[*]}" -v peers="$PEERS" \
      -v avail="${RUN_ALLOCS[*]}" -v noisy="$NOISY" '
    function median(s,    a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function spread(s, m,    a, n, i, lo, hi) {  # (max - min) / median
      n = split(s, a, " ")
      if (n < 2 || m <= 0) return 0
      lo = hi = a[1] + 0
      for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
      return (hi - lo) / m
    }
    NR == 1 { next }
    {
      k = $1 SUBSEP $2; seen[$1] = 1; ran[k] = 1
      if ($4 != "ok") { fail[k] = 1; why[k] = $4; next }
      w[k] = w[k] " " $5; r[k] = r[k] " " $6
    }
    END {
      nr = split(rows, R, " "); na = split(allocs, A, " ")
      for (i = 1; i <= na; i++) isavail[A[i]] = (index(" " avail " ", " " A[i] " ") > 0)
      hdr = "| benchmark |"; sep = "|---|"
      for (i = 1; i <= na; i++) { hdr = hdr " " A[i] " time s (×best) | " A[i] " RSS MiB (×best) |"; sep = sep "---:|---:|" }
      print hdr; print sep
      for (j = 1; j <= nr; j++) {
        row = R[j]; if (!(row in seen)) continue
        bt = 0; br = 0
        for (i = 1; i <= na; i++) {
          k = row SUBSEP A[i]
          if (!(k in ran) || (k in fail)) continue
          mt[k] = median(w[k]); mr[k] = median(r[k])
          if (index(peers, " " A[i] " ")) {
            if (bt == 0 || mt[k] < bt) bt = mt[k]
            if (br == 0 || mr[k] < br) br = mr[k]
          }
        }
        line = "| " row " |"
        for (i = 1; i <= na; i++) {
          a = A[i]; k = row SUBSEP a
          if (!isavail[a]) { line = line " n/a | n/a |"; continue }
          if (!(k in ran)) { line = line " – | – |"; continue }
          if (k in fail) { line = line " FAIL | FAIL |"; nfail[a]++; continue }
          ct = sprintf("%.3f", mt[k]); cr = sprintf("%.1f", mr[k] / 1024)
          if (bt > 0) { rt = mt[k] / bt; ct = ct sprintf(" (%.2f)", rt); st[a] += log(rt); nt[a]++
                        if (rt > worst[a]) { worst[a] = rt; worstrow[a] = row } }
          if (br > 0) { rr = mr[k] / br; cr = cr sprintf(" (%.2f)", rr); sr[a] += log(rr); nrr[a]++ }
          if (spread(w[k], mt[k]) > noisy) { ct = ct "~"; nnoisy++ }
          if (spread(r[k], mr[k]) > noisy) { cr = cr "~"; nnoisy++ }
          line = line " " ct " | " cr " |"
        }
        print line
      }
      line = "| **geomean ratio** |"
      for (i = 1; i <= na; i++) {
        a = A[i]
        if (!isavail[a]) { line = line " n/a | n/a |"; continue }
        gt = nt[a] ? sprintf("**%.3f**", exp(st[a] / nt[a])) : "–"
        gr = nrr[a] ? sprintf("**%.3f**", exp(sr[a] / nrr[a])) : "–"
        if (nfail[a]) { gt = gt " +" nfail[a] " FAIL"; gr = gr " +" nfail[a] " FAIL" }
        line = line " " gt " | " gr " |"
      }
      print line
      print ""
      print "Ratios are to the best peer of the row (glibc, jemalloc, mimalloc, tcmalloc; ammalloc excluded); geomean over the rows where the allocator ran."
      if (nnoisy) printf "~ after a cell: its repetitions spread by more than %d%% of their median ((max - min) / median), so its ratio is uncertain.\n", noisy * 100 + 0.5
      pre = "Worst time ratio per allocator: "
      for (i = 1; i <= na; i++) if (nt[A[i]]) { printf "%s%s %.2f (%s)", pre, A[i], worst[A[i]], worstrow[A[i]]; pre = ", " }
      print ""
      for (j = 1; j <= nr; j++) for (i = 1; i <= na; i++) {
        k = R[j] SUBSEP A[i]
        if (k in fail) print "- FAIL " R[j] " / " A[i] ": " why[k]
      }
    }' "$RAW"
  for r in "${ROWS[@]}"; do
    if [ -n "${SKIP_WHY[$r]:-}" ]; then echo; echo "- $r: skipped (${SKIP_WHY[$r]})"; fi
  done
  for a in "${ALLOCS[@]}"; do
    if [ -n "${NA_WHY[$a]:-}" ]; then echo; echo "- $a: n/a (${NA_WHY[$a]})"; fi
  done
} >"$MD"
cp "$RAW" "$OUT/latest.tsv"
cp "$MD" "$OUT/latest.md"
cat "$MD"
note "raw numbers: $RAW; table: $MD"

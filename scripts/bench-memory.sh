#!/usr/bin/env bash
# bench-memory.sh — resident memory of ammalloc against glibc, jemalloc,
# mimalloc and tcmalloc, phase by phase (test/bench/memory_phases.cc, issue 18).
#
# Patterns (see memory_phases.cc):
#   shift       4 threads, a 200 MiB live set whose size mix changes each phase
#   kvchurn     256 KiB..4 MiB blocks, 9 GiB of volume through a 2 GiB LRU budget
#   threads64   64 threads of small work, 20% cross-thread frees, 18 MiB live
#   threads256  the same with 256 threads
# Every pattern runs under every allocator: glibc with no preload, the others
# with LD_PRELOAD=<lib> (ammalloc: --lib, default build/libammalloc.so, built
# with meson if missing; the peers from their Debian packages libjemalloc2,
# libmimalloc2.0, libtcmalloc-minimal4 — a missing one is skipped with a note).
# Repetitions are interleaved (for each pattern: rep 1 = every allocator, rep 2
# = every allocator again, ..., the order rotating per rep). One markdown table
# per pattern: a row per phase end with "rss MiB / frag %" per allocator
# (medians over the reps, each taken separately), the live MiB the program
# holds, the peak RSS and, for kvchurn, the released-then-refaulted MiB.
#
# usage: scripts/bench-memory.sh [--quick] [--reps N] [--only PATTERN...] [--lib PATH]
#                                [--allocs LIST] [--scale X] [--phase-s S] [--settle S]
#                                [--install]
#   --quick        smoke run: scale 0.05, 1 repetition (numbers not meaningful)
#   --reps N       repetitions (default 3)
#   --only P..     only these patterns (shift kvchurn threads64 threads256)
#   --lib PATH     the ammalloc shared object (default build/libammalloc.so)
#   --allocs LIST  comma-separated subset of glibc,ammalloc,jemalloc,mimalloc,tcmalloc
#   --scale X      sizes and volumes (default 1; a run of every pattern and
#                  allocator takes ~20 s per rep and pattern at scale 1)
#   --phase-s S    length of a shift phase (default 3 x scale s)
#   --settle S     sleep before each phase-end reading (default 0.5 x scale s)
#   --install      apt-get install the missing peers (root only; default: skip them)
#
# Output: the tables on stdout; progress on stderr; raw numbers (one line per
# phase end and run) in bench-out/memory-<stamp>.tsv, the tables in
# bench-out/memory-<stamp>.md (and bench-out/memory-latest.{tsv,md}). A crash,
# a timeout or a corrupted block shows as FAIL in that cell.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

ALL_PATTERNS=(shift kvchurn threads64 threads256)
ALL_ALLOCS=(glibc ammalloc jemalloc mimalloc tcmalloc)

QUICK=0
REPS=3
REPS_SET=0
ONLY=()
LIB=""
ALLOCS_OPT=""
SCALE=""
PHASE_S=""
SETTLE=""
INSTALL=0

die() { echo "bench-memory.sh: $*" >&2; exit 2; }
note() { echo "bench-memory.sh: $*" >&2; }
is_num() { [[ "$1" =~ ^[0-9]*\.?[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; REPS_SET=1; shift 2 ;;
    --lib) [ $# -ge 2 ] || die "--lib needs a path"; LIB=$2; shift 2 ;;
    --allocs) [ $# -ge 2 ] || die "--allocs needs a list"; ALLOCS_OPT=$2; shift 2 ;;
    --scale) [ $# -ge 2 ] || die "--scale needs a number"; SCALE=$2; shift 2 ;;
    --phase-s) [ $# -ge 2 ] || die "--phase-s needs a number"; PHASE_S=$2; shift 2 ;;
    --settle) [ $# -ge 2 ] || die "--settle needs a number"; SETTLE=$2; shift 2 ;;
    --install) INSTALL=1; shift ;;
    --only)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do ONLY+=(${1//,/ }); shift; done
      [ ${#ONLY[@]} -gt 0 ] || die "--only needs at least one pattern" ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done

[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
if [ $QUICK = 1 ] && [ $REPS_SET = 0 ]; then REPS=1; fi
if [ -z "$SCALE" ]; then
  if [ $QUICK = 1 ]; then SCALE=0.05; else SCALE=1; fi
fi
is_num "$SCALE" || die "--scale must be a positive number"
[ -z "$PHASE_S" ] || is_num "$PHASE_S" || die "--phase-s must be a number"
[ -z "$SETTLE" ] || is_num "$SETTLE" || die "--settle must be a number"

PATTERNS=()
if [ ${#ONLY[@]} -eq 0 ]; then
  PATTERNS=("${ALL_PATTERNS[@]}")
else
  for want in "${ONLY[@]}"; do
    case " ${ALL_PATTERNS[*]} " in *" $want "*) ;; *) die "unknown pattern '$want' (known: ${ALL_PATTERNS[*]})" ;; esac
  done
  for p in "${ALL_PATTERNS[@]}"; do
    case " ${ONLY[*]} " in *" $p "*) PATTERNS+=("$p") ;; esac
  done
fi

ALLOCS=()
if [ -z "$ALLOCS_OPT" ]; then
  ALLOCS=("${ALL_ALLOCS[@]}")
else
  for a in ${ALLOCS_OPT//,/ }; do
    case " ${ALL_ALLOCS[*]} " in *" $a "*) ;; *) die "unknown allocator '$a' (known: ${ALL_ALLOCS[*]})" ;; esac
  done
  for a in "${ALL_ALLOCS[@]}"; do
    case ",$ALLOCS_OPT," in *",$a,"*) ALLOCS+=("$a") ;; esac
  done
fi

# ------------------------------------------------------------------ output --
OUT=bench-out
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$OUT/memory-$STAMP.tsv"
MD="$OUT/memory-$STAMP.md"
WORK=$(mktemp -d "$ROOT/$OUT/work.XXXXXX") || die "cannot create a work dir"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- allocators --
# scripts/lib/allocators.sh: LIBS[alloc] and NA_WHY[alloc]; it installs missing
# packages only with INSTALL=1 (--install) and root.
. "$ROOT/scripts/lib/allocators.sh"
command -v g++ >/dev/null || die "g++ is missing"
find_peers
find_ammalloc
RUN_ALLOCS=()
for a in "${ALLOCS[@]}"; do
  if [ "$a" = glibc ]; then RUN_ALLOCS+=(glibc); continue; fi   # no preload
  if [ -n "${LIBS[$a]:-}" ]; then RUN_ALLOCS+=("$a"); else note "$a: skipped (${NA_WHY[$a]:-not found})"; fi
done
[ ${#RUN_ALLOCS[@]} -gt 0 ] || die "no allocator available"

# ------------------------------------------------------------------ program --
BB=build-bench
BIN=$BB/memory_phases
SRC=test/bench/memory_phases.cc
mkdir -p "$BB"
if [ ! -x "$BIN" ] || [ "$SRC" -nt "$BIN" ] || [ test/bench/bench_common.h -nt "$BIN" ] ||
   [ test/common/proc_self.h -nt "$BIN" ]; then
  note "building $BIN"
  g++ -O2 -std=c++20 -pthread -Wall -o "$BIN" "$SRC" 2>"$BB/memory_phases.log" ||
    die "build of memory_phases failed, see $BB/memory_phases.log"
fi

PARGS=(--scale "$SCALE")
[ -n "$PHASE_S" ] && PARGS+=(--phase-s "$PHASE_S")
[ -n "$SETTLE" ] && PARGS+=(--settle "$SETTLE")
TIMEOUT=$(awk -v s="$SCALE" 'BEGIN { t = 120 * s; if (t < 60) t = 60; printf "%d", t + 60 }')

# One run -> lines of the raw file:
#   pattern alloc rep status phase label live_mib rss_mib frag faults refault_mib
# (phase "peak": rss_mib = the peak RSS, refault_mib = kvchurn's total).
run_one() {  # run_one PATTERN ALLOC REP
  local p=$1 a=$2 rep=$3 pre="" rc status
  [ "$a" != glibc ] && pre=${LIBS[$a]}
  (cd "$WORK" && exec timeout -k 5 "$TIMEOUT" env ${pre:+LD_PRELOAD="$pre"} "$ROOT/$BIN" "$p" "${PARGS[@]}") \
    >"$WORK/out" 2>"$WORK/err" </dev/null
  rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then status="FAIL:timeout"
  elif [ $rc != 0 ]; then status="FAIL:exit-$rc"
  elif ! grep -q "^pattern=$p peak_rss_mib=" "$WORK/out"; then status="FAIL:no-result"
  else status=ok; fi
  if [ "$status" != ok ]; then
    cp "$WORK/err" "$OUT/fail-$STAMP-memory-$p-$a-$rep.stderr" 2>/dev/null
    cp "$WORK/out" "$OUT/fail-$STAMP-memory-$p-$a-$rep.stdout" 2>/dev/null
    printf '%s\t%s\t%s\t%s\t-\t\t\t\t\t\t\n' "$p" "$a" "$rep" "$status" >>"$RAW"
  else
    awk -v p="$p" -v a="$a" -v rep="$rep" '
      /^#/ { next }
      {
        delete f
        for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
        if ("peak_rss_mib" in f) {
          printf "%s\t%s\t%s\tok\tpeak\t\t\t%s\t\t\t%s\n", p, a, rep, f["peak_rss_mib"], f["refault_mib"]
        } else if ("phase" in f) {
          printf "%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p, a, rep, f["phase"], f["mix"],
                 f["live_mib"], f["rss_mib"], f["frag"], f["faults"], f["refault_mib"]
        }
      }' "$WORK/out" >>"$RAW"
  fi
  note "$p rep $rep/$REPS $a: $status$([ "$status" = ok ] && sed -n 's/.*\(peak_rss_mib=[^ ]*\).*/, \1/p' "$WORK/out")"
}

printf 'pattern\talloc\trep\tstatus\tphase\tlabel\tlive_mib\trss_mib\tfrag\tfaults\trefault_mib\n' >"$RAW"
note "patterns: ${PATTERNS[*]}; allocators: ${RUN_ALLOCS[*]}; reps: $REPS; ${PARGS[*]}"
n=${#RUN_ALLOCS[@]}
for P in "${PATTERNS[@]}"; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for ((k = 0; k < n; k++)); do
      run_one "$P" "${RUN_ALLOCS[$(((k + rep - 1) % n))]}" "$rep"
    done
  done
done

# ------------------------------------------------------------------ tables --
{
  echo "ammalloc memory benchmark (test/bench/memory_phases.cc): $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, reps $REPS (medians), ${PARGS[*]}$([ $QUICK = 1 ] && echo ', --quick')"
  awk -F'\t' -v pats="${PATTERNS[*]}" -v allocs="${RUN_ALLOCS[*]}" '
    function median(s,    a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR == 1 { next }
    {
      p = $1; a = $2
      if ($4 != "ok") { fail[p, a] = 1; why[p, a] = why[p, a] " " $4; next }
      ok[p, a] = 1
      if ($5 == "peak") { peak[p, a] = peak[p, a] " " $8; if ($11 != "") refault[p, a] = refault[p, a] " " $11; next }
      ph = $5 + 0; if (ph > nph[p]) nph[p] = ph
      if ($6 != "") label[p, ph] = $6
      live[p, ph] = live[p, ph] " " $7
      rss[p, a, ph] = rss[p, a, ph] " " $8
      frag[p, a, ph] = frag[p, a, ph] " " $9
    }
    END {
      np = split(pats, P, " "); na = split(allocs, A, " ")
      title["shift"] = "shift: 4 threads, live set 200 MiB x scale, mix A 16..512 B / B 1..64 KiB / C 600 B..4 KiB"
      title["kvchurn"] = "kvchurn: 256 KiB..4 MiB blocks, 9 GiB x scale of volume through a 2 GiB x scale LRU budget, a phase per GiB x scale"
      title["threads64"] = "threads64: 64 threads, 16 B..8 KiB, 20% cross-thread frees, 18 MiB x scale live, a phase per round"
      title["threads256"] = "threads256: 256 threads, 16 B..8 KiB, 20% cross-thread frees, 18 MiB x scale live, a phase per round"
      for (j = 1; j <= np; j++) {
        p = P[j]
        print ""; print "### " title[p]; print ""
        hdr = "| phase | live MiB |"; sep = "|---|---:|"
        for (i = 1; i <= na; i++) { hdr = hdr " " A[i] " rss MiB / frag % |"; sep = sep "---:|" }
        print hdr; print sep
        for (ph = 1; ph <= nph[p]; ph++) {
          line = "| " ph ((p, ph) in label ? " (" label[p, ph] ")" : "") " | " sprintf("%.1f", median(live[p, ph])) " |"
          for (i = 1; i <= na; i++) {
            a = A[i]
            if ((p, a) in fail) line = line " FAIL |"
            else if (!((p, a, ph) in rss)) line = line " – |"
            else line = line sprintf(" %.1f / %.0f |", median(rss[p, a, ph]), 100 * median(frag[p, a, ph]))
          }
          print line
        }
        line = "| **peak RSS MiB** | |"
        for (i = 1; i <= na; i++) {
          a = A[i]
          line = line (((p, a) in fail) ? " FAIL |" : (((p, a) in peak) ? sprintf(" %.1f |", median(peak[p, a])) : " – |"))
        }
        print line
        if (p == "kvchurn") {
          line = "| **refaulted MiB** | |"
          for (i = 1; i <= na; i++) {
            a = A[i]
            line = line (((p, a) in fail) ? " FAIL |" : (((p, a) in refault) ? sprintf(" %.1f |", median(refault[p, a])) : " – |"))
          }
          print line
        }
        for (i = 1; i <= na; i++) if ((p, A[i]) in fail) print "\n- FAIL " p " / " A[i] ":" why[p, A[i]]
      }
    }' "$RAW"
  echo
  echo "rss = VmRSS at the phase end (after the settle sleep) minus the program's RSS at start;"
  echo "frag = (rss - live) / rss; live = the requested bytes the program holds. Peak RSS ="
  echo "ru_maxrss minus the start RSS. Refaulted (kvchurn) = minor faults while touching new"
  echo "blocks once the LRU budget was first reached, x 4 KiB: an upper estimate (pages new"
  echo "to the process count too; under transparent huge pages one fault maps 2 MiB)."
  echo "glibc runs without a preload; the others with LD_PRELOAD."
  for a in "${ALLOCS[@]}"; do
    case " ${RUN_ALLOCS[*]} " in *" $a "*) ;; *) echo; echo "- $a: skipped (${NA_WHY[$a]:-not found})" ;; esac
  done
} >"$MD"
cp "$RAW" "$OUT/memory-latest.tsv"
cp "$MD" "$OUT/memory-latest.md"
cat "$MD"
note "raw numbers: $RAW; tables: $MD"

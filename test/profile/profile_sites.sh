#!/usr/bin/env bash
# profile_sites.sh LIB BUILDDIR — the heap profiler against known truth.
#
# profile_sites (a PIE) keeps ~70% of its live bytes from site_seventy and ~30%
# from site_thirty, and allocates and frees 600 MB in site_churn; it prints the
# exact figures. Under AMMALLOC_HEAP_PROFILE the exit profile, read by
# `google-pprof --text`, must give each of the first two its share of the in-use
# bytes within 5 percentage points (and the total within 10%), and
# `--alloc_space` must show site_churn on top. Sampling at a 64 KiB mean makes
# ~1600 samples of the 100 MB live set: one standard deviation of a share is
# ~1.2 points, so 5 points is > 4 sigma.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
pp_need_pprof
am_tmpdir
prog="$AM_BUILDDIR/profile_sites"
[ -x "$prog" ] || am_fail "program not found: $prog"
am_check_preload "$prog"

# Position-independent, as the test means to check.
readelf -h "$prog" 2>/dev/null | grep -q 'DYN' || am_fail "$prog is not a PIE"

# Only the exit profile (the in-use trigger has its own test, profile_triggers).
truth=$(timeout -k 10 120 env AMMALLOC_PROFILE_SAMPLE=64K AMMALLOC_HEAP_PROFILE="$AM_TMP/sites" AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL=0 \
        LD_PRELOAD="$AM_LIB" "$prog" 2>"$AM_TMP/err")
status=$?
[ $status -eq 0 ] || am_fail "profile_sites $(am_status_text $status): $(cat "$AM_TMP/err")"
grep -q "ammalloc: heap profile $AM_TMP/sites\.[0-9]*\.0001\.heap (exit)" "$AM_TMP/err" ||
  am_fail "no 'heap profile ... (exit)' line on stderr: $(cat "$AM_TMP/err")"
prof=$(pp_newest "$AM_TMP/sites")
[ -n "$prof" ] || am_fail "no profile written"
head -n 1 "$prof" | grep -Eq '^heap profile: +[0-9]+: +[0-9]+ \[ *[0-9]+: +[0-9]+\] @ heap_v2/65536$' ||
  am_fail "bad header: $(head -n 1 "$prof")"

inuse=$(google-pprof --text "$prog" "$prof" 2>/dev/null)
alloc=$(google-pprof --text --alloc_space "$prog" "$prof" 2>/dev/null)
echo "--- google-pprof --text $prog $prof"
echo "$inuse" | head -n 8
echo "--- google-pprof --text --alloc_space"
echo "$alloc" | head -n 5
pp_check_no_internal "$inuse"

t70=$(awk '$1 == "site_seventy" { print $2 }' <<<"$truth")
t30=$(awk '$1 == "site_thirty" { print $2 }' <<<"$truth")
tchurn=$(awk '$1 == "site_churn" { print $2 }' <<<"$truth")
p70=$(pp_flat "$inuse" site_seventy)
p30=$(pp_flat "$inuse" site_thirty)
verdict=$(awk -v t70="$t70" -v t30="$t30" -v p70="$p70" -v p30="$p30" 'BEGIN {
  ts = 100 * t70 / (t70 + t30); ps = (p70 + p30) > 0 ? 100 * p70 / (p70 + p30) : 0
  tmb = (t70 + t30) / 1048576; pmb = p70 + p30
  printf "site_seventy: %.1f%% of the two sites (truth %.1f%%); site_thirty: %.1f%% (truth %.1f%%); ", ps, ts, 100 - ps, 100 - ts
  printf "estimated %.1f MB live (truth %.1f MB)\n", pmb, tmb
  d = ps - ts; if (d < 0) d = -d
  e = pmb - tmb; if (e < 0) e = -e
  exit (d <= 5 && e <= 0.10 * tmb) ? 0 : 1 }')
ok=$?
echo "$verdict"
[ $ok -eq 0 ] || am_fail "in-use attribution off: $verdict"

top_alloc=$(awk 'NR > 1 && $6 != "" { print $6; exit }' <<<"$alloc")
[ "$top_alloc" = "site_churn" ] || am_fail "--alloc_space top entry is '$top_alloc', not site_churn"
pchurn=$(pp_flat "$alloc" site_churn)
awk -v p="$pchurn" -v t="$tchurn" 'BEGIN { e = p - t / 1048576; if (e < 0) e = -e; exit e <= 0.1 * t / 1048576 ? 0 : 1 }' ||
  am_fail "site_churn allocated ${pchurn} MB by pprof, truth $((tchurn / 1048576)) MB"
echo "profile_sites: PASS"

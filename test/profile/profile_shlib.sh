#!/usr/bin/env bash
# profile_shlib.sh LIB BUILDDIR — allocation sites in a shared library's code
# (libprofsite.so, loaded by profile_shlib) are named by google-pprof, which
# finds the library through the profile's MAPPED_LIBRARIES section; 80% of the
# live bytes are the library's, 20% the program's.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
pp_need_pprof
am_tmpdir
prog="$AM_BUILDDIR/profile_shlib"
[ -x "$prog" ] || am_fail "program not found: $prog"
am_check_preload "$prog"

timeout -k 10 120 env AMMALLOC_PROFILE_SAMPLE=32K AMMALLOC_HEAP_PROFILE="$AM_TMP/shlib" \
  LD_PRELOAD="$AM_LIB" "$prog" >"$AM_TMP/out" 2>"$AM_TMP/err"
status=$?
[ $status -eq 0 ] || am_fail "profile_shlib $(am_status_text $status): $(cat "$AM_TMP/err")"
prof=$(pp_newest "$AM_TMP/shlib")
[ -n "$prof" ] || am_fail "no profile written"
grep -q 'libprofsite\.so' "$prof" || am_fail "libprofsite.so missing from MAPPED_LIBRARIES"
text=$(google-pprof --text "$prog" "$prof" 2>/dev/null)
echo "$text" | head -n 6
pp_check_no_internal "$text"
lib_mb=$(pp_flat "$text" shlib_site_keep)
main_mb=$(pp_flat "$text" main_site_keep)
awk -v a="$lib_mb" -v b="$main_mb" 'BEGIN { s = (a + b) > 0 ? 100 * a / (a + b) : 0;
  printf "shlib_site_keep: %.1f%% of the two sites (truth 80%%)\n", s; exit (s >= 75 && s <= 85) ? 0 : 1 }' ||
  am_fail "shared-library site not attributed: shlib_site_keep $lib_mb MB, main_site_keep $main_mb MB"
echo "profile_shlib: PASS"

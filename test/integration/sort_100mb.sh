#!/usr/bin/env bash
# sort_100mb.sh LIB BUILDDIR
#
# Generates a deterministic ~100 MB text file (awk with a Park-Miller LCG),
# sorts it with GNU sort (LC_ALL=C) without and with LD_PRELOAD=LIB, and requires
# byte-identical results (cmp). Two variants: sort's defaults (big in-memory
# buffer, threads), and a numeric key sort with a 16 MiB buffer that spills to
# temporary files and merges them. Everything lives in a temp dir, removed at
# exit. Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
sort_bin=$(command -v sort) || am_skip "sort not found"
command -v awk >/dev/null 2>&1 || am_skip "awk not found"
command -v cmp >/dev/null 2>&1 || am_skip "cmp not found"
am_tmpdir
am_check_preload "$sort_bin"

avail_kb=$(df -Pk "$AM_TMP" | awk 'NR == 2 { print $4 }')
[ "${avail_kb:-0}" -ge 600000 ] || am_skip "less than 600 MB free in $AM_TMP"

input="$AM_TMP/input.txt"
timeout -k 5 120 awk -v bytes=104857600 '
BEGIN {
  # x = x * 16807 mod (2^31 - 1): every product stays below 2^53, so any awk
  # (doubles) computes it exactly.
  x = 20240601
  M = 2147483647
  for (i = 0; i < 4096; i++) {
    w = ""
    x = (x * 16807) % M; len = 3 + x % 10
    for (j = 0; j < len; j++) { x = (x * 16807) % M; w = w sprintf("%c", 97 + x % 26) }
    word[i] = w
  }
  total = 0; n = 0
  while (total < bytes) {
    x = (x * 16807) % M; a = x
    x = (x * 16807) % M; b = x
    x = (x * 16807) % M; c = x
    line = word[a % 4096] " " word[b % 4096] " " (c % 1000000) " " word[(a + b) % 4096] "-" n
    if (c % 7 == 0) line = line " " word[c % 4096] word[(b + c) % 4096]
    print line
    total += length(line) + 1
    n++
  }
}' >"$input" || am_fail "generating the input failed"
size=$(wc -c <"$input")
echo "$AM_SCRIPT: input $size bytes, $(wc -l <"$input") lines"
[ "$size" -ge 100000000 ] || am_fail "generated input is only $size bytes"

mkdir -p "$AM_TMP/spill"
# shellcheck disable=SC2054 # "-k3,3n" is one argument, not two elements
set_opts() {
  case "$1" in
    default) opts=() ;;
    numeric-key-small-buffer) opts=(-t ' ' -k3,3n -k1,1 -S 16M --parallel=2 -T "$AM_TMP/spill") ;;
  esac
}
for name in default numeric-key-small-buffer; do
  set_opts "$name"
  base="$AM_TMP/$name.base"
  test_out="$AM_TMP/$name.preload"
  timeout -k 10 180 env LC_ALL=C "$sort_bin" "${opts[@]}" -o "$base" "$input"
  status=$?
  [ "$status" -eq 0 ] || am_fail "sort $name without LD_PRELOAD: $(am_status_text "$status")"
  timeout -k 10 180 env LC_ALL=C LD_PRELOAD="$AM_LIB" "$sort_bin" "${opts[@]}" -o "$test_out" "$input"
  status=$?
  [ "$status" -eq 0 ] || am_fail "sort $name with LD_PRELOAD: $(am_status_text "$status")"
  if ! cmp "$base" "$test_out"; then
    am_fail "sort $name: output with LD_PRELOAD differs from the output without it"
  fi
  echo "$AM_SCRIPT: ok   $name ($(wc -c <"$test_out") bytes identical)"
  rm -f "$base" "$test_out"
done
echo "$AM_SCRIPT: PASS"
exit 0

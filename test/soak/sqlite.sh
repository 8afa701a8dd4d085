#!/usr/bin/env bash
# sqlite.sh LIB BUILDDIR [short|long]
#
# sqlite3 runs a large generated SQL script (test/soak/gen_sql.py: ~2 MB of
# statements in the short version, ~20 MB in the long one; rows up to hundreds
# of KiB, updates that grow and shrink them, big sorts, group_concat/json
# strings, windows, savepoints) twice: in memory and on a database file, each
# first on the system malloc, then with LD_PRELOAD=LIB. The outputs must be
# byte-identical and end with sqlite's integrity check "ok".
# Exit: 0 pass, 1 fail, 77 skip (no sqlite3 or python3).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
mode=${AM_ARGS[0]:-short}
sqlite=$(command -v sqlite3) || am_skip "sqlite3 not installed (Debian: sqlite3)"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3) || am_skip "python3 not found"
am_tmpdir
am_check_preload "$sqlite"

case "$mode" in
  short) scale=0.3; limit=300 ;;
  long) scale=3; limit=3600 ;;
  *) am_fail "unknown mode '$mode' (short or long)" ;;
esac
"$python" "$here/gen_sql.py" "$scale" >"$AM_TMP/soak.sql" || am_fail "gen_sql.py failed"
echo "$AM_SCRIPT: $mode: $(wc -c <"$AM_TMP/soak.sql") bytes of SQL (scale $scale)"

run() {  # name db preload
  local name=$1 db=$2 preload=$3 start status
  local cmd=("$sqlite" -batch -init /dev/null "$db" ".read $AM_TMP/soak.sql")
  [ -n "$preload" ] && cmd=(env LD_PRELOAD="$AM_LIB" "${cmd[@]}")
  start=$(date +%s%N)
  soak_run "$limit" "$AM_TMP/$name.out" "$AM_TMP/$name.err" "${cmd[@]}"
  status=$?
  printf '%s: %-16s %s, %d ms, %s lines\n' "$AM_SCRIPT" "$name" "$(am_status_text $status)" \
    "$(soak_ms "$start")" "$(wc -l <"$AM_TMP/$name.out")"
  if [ $status -ne 0 ]; then
    head -n 20 "$AM_TMP/$name.err"
    am_fail "sqlite3 ($name) $(am_status_text $status)"
  fi
}

for where in memory file; do
  db=":memory:"; [ $where = file ] && db="$AM_TMP/soak-system.db"
  run "$where-system" "$db" ""
  db=":memory:"; [ $where = file ] && db="$AM_TMP/soak-ammalloc.db"
  run "$where-ammalloc" "$db" preload
  if ! cmp -s "$AM_TMP/$where-system.out" "$AM_TMP/$where-ammalloc.out"; then
    diff "$AM_TMP/$where-system.out" "$AM_TMP/$where-ammalloc.out" | head -n 20
    am_fail "$where: output differs with ammalloc"
  fi
  grep -qx 'check|ok' "$AM_TMP/$where-ammalloc.out" || am_fail "$where: no integrity check 'ok' in the output"
  [ "$(tail -n 1 "$AM_TMP/$where-ammalloc.out")" = "done" ] || am_fail "$where: the script did not run to the end"
done
echo "$AM_SCRIPT: PASS (outputs identical, integrity ok)"
exit 0

#!/usr/bin/env bash
# bad_pointer.sh LIB BUILDDIR
#
# Runs each misuse case of BUILDDIR/bad_pointer with LD_PRELOAD=LIB and checks
# that ammalloc caught it: the program must die by SIGABRT (status 134) and its
# stderr must hold one line with `ammalloc: ` and `invalid pointer 0x<address>`
# (or `double free`, for the cases that free a freed block). When the line names
# an address it must be the one bad_pointer announced. Prints what failed.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
prog="$AM_BUILDDIR/bad_pointer"
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
am_check_preload "$prog"

# case name : accepted message (regex, after "ammalloc: ")
cases=(
  "interior:invalid pointer 0x"
  "foreign:invalid pointer 0x"
  "stack:invalid pointer 0x"
  "double-large:invalid pointer 0x|double free"
  "realloc-freed-large:invalid pointer 0x|double free"
  "usable-foreign:invalid pointer 0x"
)

failed=0
for entry in "${cases[@]}"; do
  name=${entry%%:*}
  want=${entry#*:}
  out="$AM_TMP/$name.out"
  err="$AM_TMP/$name.err"
  # The group's own stderr goes to /dev/null only to drop bash's "Aborted" job
  # notice; the program's stderr is in $err.
  { timeout -k 5 30 env LD_PRELOAD="$AM_LIB" "$prog" "$name" >"$out" 2>"$err"; status=$?; } 2>/dev/null
  problems=()
  [ "$status" -eq 134 ] || problems+=("expected death by SIGABRT (status 134), got $(am_status_text "$status")")
  line=$(grep -E "ammalloc: .*($want)" "$err" | head -n 1)
  if [ -z "$line" ]; then
    problems+=("stderr has no line with 'ammalloc: ' and '${want//|/' or '}'")
  elif [[ $line =~ invalid\ pointer\ 0x([0-9a-fA-F]+) ]]; then
    got_hex=${BASH_REMATCH[1]}
    target=$(sed -n 's/^bad_pointer: target 0x\([0-9a-fA-F]*\).*/\1/p' "$out" | head -n 1)
    if [ -n "$target" ] && [ $((16#$got_hex)) -ne $((16#$target)) ]; then
      problems+=("message names 0x$got_hex, but the pointer passed was 0x$target")
    fi
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "$AM_SCRIPT: ok   $name: $line"
  else
    failed=$((failed + 1))
    echo "$AM_SCRIPT: FAIL $name:"
    for p in "${problems[@]}"; do echo "    $p"; done
    echo "    --- stdout:"; sed 's/^/    /' "$out"
    echo "    --- stderr:"; head -n 20 "$err" | sed 's/^/    /'
  fi
done

[ "$failed" -eq 0 ] || am_fail "$failed of ${#cases[@]} misuse cases not caught as required"
echo "$AM_SCRIPT: PASS"
exit 0

#!/usr/bin/env bash
# bad_pointer.sh LIB BUILDDIR
#
# Runs each misuse case of BUILDDIR/bad_pointer (one child process each) with
# LD_PRELOAD=LIB and checks that ammalloc caught it: the program must die by
# SIGABRT (status 134), and its stderr must hold the line
#     ammalloc: <function>(): invalid pointer 0x<address>
# (or `double free of 0x<address>` where a case allows it), naming the function
# the program called and exactly the address bad_pointer announced.
# A case may name environment settings for its child (AMMALLOC_HARDEN=1: every
# double free of a small object is caught in hardened mode; by default those
# with no allocation of the class in between, see bad_pointer.c).
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
prog="$AM_BUILDDIR/bad_pointer"
[ -x "$prog" ] || am_fail "program not found or not executable: $prog"
am_check_preload "$prog"

# case name : function named in the message : accepted kinds [: VAR=value ...]
cases=(
  "interior:free:invalid pointer"
  "interior-large:free:invalid pointer"
  "realloc-interior:realloc:invalid pointer"
  "foreign:free:invalid pointer"
  "stack:free:invalid pointer"
  "double-large:free:invalid pointer|double free of"
  "realloc-freed-large:realloc:invalid pointer|double free of"
  "usable-foreign:malloc_usable_size:invalid pointer"
  "usable-stack:malloc_usable_size:invalid pointer"
  "span-tail:free:invalid pointer"
  "free-sized-class:free_sized:invalid pointer"
  "free-sized-smaller:free_sized:invalid pointer"
  "free-sized-large:free_sized:invalid pointer"
  "double-small:free:double free of:AMMALLOC_HARDEN=1"
  "realloc-freed-small:realloc:double free of|invalid pointer:AMMALLOC_HARDEN=1"
  "double-small-many:free:double free of:AMMALLOC_HARDEN=1"
  "double-realloc-inplace:free:double free of:AMMALLOC_HARDEN=1"
  # The default mode (no hardening): the free fast path compares with the
  # head of the thread's list, so these are caught too.
  "double-small:free:double free of"
  "double-small-many:free:double free of"
  "double-realloc-inplace:free:double free of"
  "realloc-freed-small:realloc:double free of"
  "realloc-freed-small-inplace:realloc:double free of"
)

# check NAME FUNCTION KINDS [VAR=value...]: runs one case; sets $problems and $line.
check() {
  local name=$1 fn=$2 kinds=$3 out="$AM_TMP/$1.out" err="$AM_TMP/$1.err" status target
  shift 3
  # The group's own stderr goes to /dev/null only to drop bash's "Aborted" job
  # notice; the program's stderr is in $err.
  { timeout -k 5 30 env "$@" LD_PRELOAD="$AM_LIB" "$prog" "$name" >"$out" 2>"$err"; status=$?; } 2>/dev/null
  problems=()
  [ "$status" -eq 5 ] && { problems+=("could not set the case up: $(tail -n 1 "$out")"); return; }
  [ "$status" -eq 134 ] || problems+=("expected death by SIGABRT (status 134), got $(am_status_text "$status")")
  target=$(sed -n 's/^bad_pointer: target 0x\([0-9a-fA-F]*\).*/\1/p' "$out" | head -n 1)
  [ -n "$target" ] || problems+=("bad_pointer did not announce its target")
  line=$(grep -E "^ammalloc: " "$err" | head -n 1)
  if [ -z "$line" ]; then
    problems+=("stderr has no line starting 'ammalloc: '")
  elif [[ $line =~ ^ammalloc:\ ([a-z_]+)\(\):\ (invalid\ pointer|double\ free\ of)\ 0x([0-9a-fA-F]+)$ ]]; then
    [ "${BASH_REMATCH[1]}" = "$fn" ] || problems+=("the message names ${BASH_REMATCH[1]}(), the program called $fn()")
    [[ "|$kinds|" == *"|${BASH_REMATCH[2]}|"* ]] || problems+=("'${BASH_REMATCH[2]}' where '$kinds' was expected")
    if [ -n "$target" ] && [ $((16#${BASH_REMATCH[3]})) -ne $((16#$target)) ]; then
      problems+=("the message names 0x${BASH_REMATCH[3]}, but the pointer passed was 0x$target")
    fi
  else
    problems+=("the line is not 'ammalloc: $fn(): invalid pointer 0x...' (or 'double free of 0x...')")
  fi
}

failed=0
for entry in "${cases[@]}"; do
  IFS=: read -r name fn kinds envs <<<"$entry"
  # shellcheck disable=SC2086 # envs: words of VAR=value
  check "$name" "$fn" "$kinds" $envs
  if [ ${#problems[@]} -eq 0 ]; then
    echo "$AM_SCRIPT: ok   $name${envs:+ ($envs)}: $line"
  else
    failed=$((failed + 1))
    echo "$AM_SCRIPT: FAIL $name:"
    for p in "${problems[@]}"; do echo "    $p"; done
    echo "    --- stdout:"; sed 's/^/    /' "$AM_TMP/$name.out"
    echo "    --- stderr:"; head -n 20 "$AM_TMP/$name.err" | sed 's/^/    /'
  fi
done

[ "$failed" -eq 0 ] || am_fail "$failed of ${#cases[@]} misuse cases not caught as required"
echo "$AM_SCRIPT: PASS (${#cases[@]} misuse cases caught)"
exit 0

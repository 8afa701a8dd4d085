#!/usr/bin/env bash
# Checks two rules of docs/ARCHITECTURE.md ("Rules"):
#  7. the OS boundary is one directory: only lib/os/ includes <sys/mman.h> or
#     calls syscall();
#  1. nothing inside lib/ allocates through malloc: the libraries' undefined
#     symbols (nm -u) are all on test/layout/allowed_undefined.txt.
# And that the os layer's test-only fault injection (os::inject_map_failures)
# is not exported: a program must not be able to switch it on.
# Usage: check_layout.sh SOURCE_ROOT LIB.so...
set -u
root=$1; shift
fail=0
here=$(dirname "$0")

offenders=$(cd "$root" && grep -rlE '#include <sys/mman\.h>|[^_a-z]syscall\(' lib interpose | grep -v '^lib/os/' || true)
if [ -n "$offenders" ]; then
  echo "FAIL: OS calls outside lib/os/: $offenders"; fail=1
fi

allowed=$(grep -vE '^\s*(#|$)' "$here/allowed_undefined.txt" | sort -u)
for lib in "$@"; do
  used=$(nm -u --format=just-symbols "$lib" | sed 's/@.*//' | sort -u)
  extra=$(comm -23 <(echo "$used") <(echo "$allowed"))
  if [ -n "$extra" ]; then
    echo "FAIL: $(basename "$lib") uses symbols outside the allow-list:"; echo "$extra" | sed 's/^/  /'
    fail=1
  else
    echo "ok: $(basename "$lib"): $(echo "$used" | wc -l) undefined symbols, all allowed"
  fi
  exported=$(nm -D --defined-only --format=just-symbols "$lib" | grep -i 'inject' || true)
  if [ -n "$exported" ]; then
    echo "FAIL: $(basename "$lib") exports the fault injection hook:"; echo "$exported" | sed 's/^/  /'
    fail=1
  fi
done
exit $fail

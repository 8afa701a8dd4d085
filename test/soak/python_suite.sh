#!/usr/bin/env bash
# python_suite.sh LIB BUILDDIR [short|long]
#
# Python's own regression tests for the modules that stress memory, with
# Debian's /usr/bin/python3 (the test modules come with libpython3.11-testsuite):
#   short: test_dict test_list test_json test_re test_threading test_bytes
#   long:  those and 24 more (sets, strings, collections, pickle, decimal,
#          weakref, gc, queues, threads, concurrent.futures, sqlite3, xml ...)
# Each module list runs first on the system malloc, then with LD_PRELOAD=LIB,
# both with PYTHONMALLOC=malloc so that every Python object (not only the
# large ones pymalloc passes on) comes from the allocator under test; child
# interpreters that the tests start inherit both. The results must be the
# same: per module, the number of tests run and the OK/skipped/failed counts,
# and the overall result SUCCESS.
# Exit: 0 pass, 1 fail, 77 skip (no python3 or no test suite).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
mode=${AM_ARGS[0]:-short}
python=/usr/bin/python3
[ -x "$python" ] || am_skip "$python not found (Debian's python3 package)"
"$python" -c 'import test.test_dict, test.libregrtest' 2>/dev/null ||
  am_skip "$python has no test suite (Debian: apt-get install libpython3.11-testsuite)"
am_tmpdir
am_check_preload "$python"

modules=(test_dict test_list test_json test_re test_threading test_bytes)
limit=300 per_module=120  # seconds; the short run takes ~20 s per interpreter
if [ "$mode" = long ]; then
  modules+=(test_set test_str test_unicode test_collections test_itertools test_pickle test_deque test_heapq
            test_sort test_array test_struct test_decimal test_fstring test_tuple test_ordered_dict test_weakref
            test_gc test_queue test_thread test_threading_local test_concurrent_futures test_sqlite3 test_csv
            test_xml_etree test_zlib test_bigaddrspace)
  limit=3600 per_module=900
elif [ "$mode" != short ]; then
  am_fail "unknown mode '$mode' (short or long)"
fi
# Test cases left out of both runs (none now). test_3_join_in_forked_from_thread
# and test_main_thread_after_fork_from_nonmain_thread hung here until ammalloc's
# background thread learnt to end when it is a process's last live thread
# (test/stress/thread_exit.c reproduces that case).
known_hangs=()
ignore=()
for t in "${known_hangs[@]}"; do ignore+=(-i "$t"); done

# Only modules this python has (test_unicode is test_str in 3.11, ...).
have=()
for m in "${modules[@]}"; do
  "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('test.$m') is None)" 2>/dev/null &&
    have+=("$m")
done
echo "$AM_SCRIPT: $mode: ${have[*]}${known_hangs[*]:+ (left out: ${known_hangs[*]})}"

# Ran/OK/FAILED lines of unittest per module, times removed, and the final result.
summary() {
  sed -nE -e 's/^Ran ([0-9]+) tests? in .*/Ran \1/p' -e '/^(OK|FAILED)( |$)/p' \
      -e 's/^(== )?Tests result: ([A-Z, ]+)( ==)?$/result \2/p' "$1" | sort | uniq -c
}

run() {  # name preload
  local name=$1 preload=$2 start status
  local cmd=(env PYTHONMALLOC=malloc "$python" -m test -v --timeout "$per_module" "${ignore[@]}" "${have[@]}")
  [ -n "$preload" ] && cmd=(env LD_PRELOAD="$AM_LIB" "${cmd[@]}")
  start=$(date +%s%N)
  ( cd "$AM_TMP" && soak_run "$limit" "$AM_TMP/$name.log" "$AM_TMP/$name.log2" "${cmd[@]}" )
  status=$?
  cat "$AM_TMP/$name.log2" >>"$AM_TMP/$name.log"
  summary "$AM_TMP/$name.log" >"$AM_TMP/$name.sum"
  echo "$AM_SCRIPT: $name: $(am_status_text $status), $(soak_ms "$start") ms," \
       "$(grep -cE ' \.\.\. ' "$AM_TMP/$name.log") test cases, $(grep 'result' "$AM_TMP/$name.sum" | sed 's/^ *[0-9]* //')"
  return $status
}

run system ""
base=$?
if [ $base -ne 0 ]; then
  tail -n 30 "$AM_TMP/system.log"
  am_skip "the test modules do not pass on the system malloc here (exit $base); nothing to compare with"
fi
run ammalloc preload
status=$?
if [ $status -ne 0 ] || ! cmp -s "$AM_TMP/system.sum" "$AM_TMP/ammalloc.sum"; then
  echo "--- system malloc:"; cat "$AM_TMP/system.sum"
  echo "--- ammalloc:"; cat "$AM_TMP/ammalloc.sum"
  grep -E '(FAIL|ERROR)(:| \()|Fatal Python error|ammalloc:|^Timeout \(' "$AM_TMP/ammalloc.log" | head -n 30
  echo "--- the last test case started:"; grep -E '^test\S* \(.*\) \.\.\. ' "$AM_TMP/ammalloc.log" | tail -n 1
  tail -n 30 "$AM_TMP/ammalloc.log"
  am_fail "results differ with ammalloc (exit $status)"
fi
echo "$AM_SCRIPT: PASS (same results: $(grep -c '^ *[0-9]* Ran' "$AM_TMP/ammalloc.sum") distinct module counts," \
     "$(grep -cE ' \.\.\. ' "$AM_TMP/ammalloc.log") test cases)"
exit 0

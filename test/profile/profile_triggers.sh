#!/usr/bin/env bash
# profile_triggers.sh LIB BUILDDIR AMMALLOC_RUN — profiles when they matter, in
# /usr/bin/python3 under the preload:
#  - a new in-use peak AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL above the last such
#    profile (100M by default), each profile naming its trigger on line 2;
#  - every AMMALLOC_HEAP_PROFILE_TIME_INTERVAL seconds;
#  - SIGTERM when the program has no handler of its own (then the default
#    action: status 143), and not when it ignores SIGTERM or handles it;
#  - ammalloc-run --profile shows the peak profile (not the empty exit one),
#    names it, and through a wrapper shell picks the real program's set.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
pp_need_run
pp_need_python
grow='
x = [bytearray(10 << 20) for i in range(35)]   # 350 MiB at the peak
del x
'
trig() { sed -n '2s/^# ammalloc .* heap profile; trigger: \([^;]*\);.*/\1/p' "$1"; }
inuse() { awk 'NR == 1 { print $4; exit }' "$1"; }

# In-use peaks: 100M, 200M, 300M, then the exit profile (nothing in use).
env AMMALLOC_HEAP_PROFILE="$AM_TMP/a" LD_PRELOAD="$AM_LIB" $py -c "$grow" 2>/dev/null || am_fail "python failed"
files=$(ls "$AM_TMP"/a.*.heap | sort)
triggers=$(for f in $files; do trig "$f"; done | tr '\n' ' ')
[ "$triggers" = "inuse inuse inuse exit " ] || am_fail "triggers: '$triggers', expected 3 x inuse then exit"
i=1
for f in $(echo "$files" | head -n 3); do
  b=$(inuse "$f")
  [ "$b" -ge $((i * 100 << 20)) ] && [ "$b" -lt $(((i * 100 + 20) << 20)) ] || am_fail "profile $i: $b bytes in use, not just above ${i}00 MiB"
  i=$((i + 1))
done
# 0 turns it off; a larger step writes fewer.
env AMMALLOC_HEAP_PROFILE="$AM_TMP/b" AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL=0 LD_PRELOAD="$AM_LIB" $py -c "$grow" 2>/dev/null
[ "$(ls "$AM_TMP"/b.*.heap | wc -l)" = 1 ] || am_fail "INUSE_INTERVAL=0 still wrote in-use profiles"
env AMMALLOC_HEAP_PROFILE="$AM_TMP/c" AMMALLOC_HEAP_PROFILE_INUSE_INTERVAL=150MiB LD_PRELOAD="$AM_LIB" $py -c "$grow" 2>/dev/null
[ "$(ls "$AM_TMP"/c.*.heap | wc -l)" = 3 ] || am_fail "INUSE_INTERVAL=150MiB: not 2 in-use profiles + exit"

# Timer: 1 s, a program allocating for 2.5 s writes at least one "time" profile.
env AMMALLOC_HEAP_PROFILE="$AM_TMP/t" AMMALLOC_HEAP_PROFILE_TIME_INTERVAL=1 AMMALLOC_PROFILE_SAMPLE=64K \
  LD_PRELOAD="$AM_LIB" $py -c '
import time
end = time.time() + 2.5
while time.time() < end:
    x = [bytes(1000) for i in range(1000)]
' 2>/dev/null || am_fail "timer run failed"
n=$(for f in "$AM_TMP"/t.*.heap; do trig "$f"; done | grep -c '^time$')
[ "$n" -ge 1 ] || am_fail "no time-triggered profile in 2.5 s with a 1 s interval"

# SIGTERM with no handler: a profile of the moment, then death by SIGTERM.
env AMMALLOC_HEAP_PROFILE="$AM_TMP/s" LD_PRELOAD="$AM_LIB" $py -c '
import os, signal
x = bytearray(50 << 20)
os.kill(os.getpid(), signal.SIGTERM)
' 2>/dev/null
status=$?
[ $status -eq 143 ] || am_fail "SIGTERM: status $status, not 143 (the default action)"
f=$(ls "$AM_TMP"/s.*.heap 2>/dev/null | head -n 1)
[ -n "$f" ] && [ "$(trig "$f")" = SIGTERM ] || am_fail "no SIGTERM profile"
[ "$(inuse "$f")" -ge $((50 << 20)) ] || am_fail "the SIGTERM profile misses the 50 MiB in use"
# The program's own handler wins (installed after ammalloc's init); an
# ignored SIGTERM stays ignored.
out=$(env AMMALLOC_HEAP_PROFILE="$AM_TMP/h" LD_PRELOAD="$AM_LIB" $py -c '
import os, signal
signal.signal(signal.SIGTERM, lambda s, f: print("own handler"))
os.kill(os.getpid(), signal.SIGTERM)
' 2>/dev/null)
[ "$out" = "own handler" ] || am_fail "the program's SIGTERM handler did not run: '$out'"
grep -l 'trigger: SIGTERM' "$AM_TMP"/h.*.heap >/dev/null 2>&1 && am_fail "SIGTERM profile although the program handles SIGTERM"
out=$(bash -c 'trap "" TERM; exec env AMMALLOC_HEAP_PROFILE="'"$AM_TMP"'/i" LD_PRELOAD="'"$AM_LIB"'" '$py' -c "
import os, signal
os.kill(os.getpid(), signal.SIGTERM)
print(\"survived\")"' 2>/dev/null)
[ "$out" = survived ] || am_fail "an ignored SIGTERM killed the program: '$out'"

# ammalloc-run --profile: the peak, named, through a wrapper shell.
if command -v google-pprof >/dev/null 2>&1; then
  out=$("$run" --profile "$AM_TMP/r" --top 3 -- bash -c "$py -c '$grow'; true" 2>&1)
  [ $? -eq 0 ] || am_fail "ammalloc-run failed: $out"
  grep -q "showing the profile at the peak of bytes in use (of process [0-9]*, started by the program's process [0-9]*)" <<<"$out" \
    || am_fail "the peak of the wrapper's child not chosen:
$out"
  line=$(grep '^ammalloc-run: heap profile ' <<<"$out")
  [[ "$line" =~ \(trigger\ inuse,\ ([0-9]+)\ bytes\ in\ use\) ]] || am_fail "no trigger/bytes in '$line'"
  [ "${BASH_REMATCH[1]}" -ge $((300 << 20)) ] || am_fail "shown profile holds ${BASH_REMATCH[1]} bytes, not the 300+ MiB peak"
  grep -q "google-pprof --text /usr/bin/python3" <<<"$out" || am_fail "pprof not run on python's binary:
$out"
  grep -Eq '^ +[0-9.]+ +[0-9.]+% .*(PyByteArray|PyObject_Malloc|_PyObject)' <<<"$out" || am_fail "no python frames in the summary:
$out"
  out=$("$run" --profile "$AM_TMP/e" --at exit -- $py -c "$grow" 2>&1)
  # ammalloc-run's own in-use step (16M): many more profiles than the library's 100M.
  [ "$(ls "$AM_TMP"/e.*.heap | wc -l)" -ge 15 ] || am_fail "ammalloc-run --profile: not ~21 in-use profiles at a 16M step"
  last=$(ls "$AM_TMP"/e.*.heap | sort | tail -n 1)
  grep -q "heap profile $last (trigger exit, " <<<"$out" || am_fail "--at exit did not show the last profile $last:
$out"
  grep -q 'heap profile .*\.heap (trigger exit, ' <<<"$out" || am_fail "--at exit did not show the exit profile:
$out"
fi
echo "profile_triggers: PASS"

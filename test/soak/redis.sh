#!/usr/bin/env bash
# redis.sh LIB BUILDDIR [short|long]
#
# redis-server with LD_PRELOAD=LIB on 127.0.0.1 (a free port; loopback only, no
# persistence files outside a temporary directory), driven by redis-benchmark
# (a bounded number of requests of 14 command types (15 in the long run; the
# LRANGE ones get a tenth of the requests), random keys, values of 64 B to 2 KiB), then a consistency check: FLUSHALL, load a known data set
# (strings of 1 B .. 512 KiB, lists, hashes, sorted sets) through redis-cli
# --pipe, DEBUG RELOAD (save and load it all again), APPEND/INCRBY/LTRIM
# changes, and read everything back: the replies must equal what the data set
# implies. The same runs on the system malloc first; both must pass, with
# identical replies. The server must shut down cleanly.
#   short: 30k requests per command type, 5k keys; long: 3 rounds of 1M, 100k keys
# Exit: 0 pass, 1 fail, 77 skip (no redis-server/redis-cli/redis-benchmark/python3).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
mode=${AM_ARGS[0]:-short}
server=$(command -v redis-server) || am_skip "redis-server not installed (Debian: redis-server)"
cli=$(command -v redis-cli) || am_skip "redis-cli not installed (Debian: redis-tools)"
bench=$(command -v redis-benchmark) || am_skip "redis-benchmark not installed (Debian: redis-tools)"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3) || am_skip "python3 not found"
am_tmpdir
am_check_preload "$server"

case "$mode" in
  short) requests=30000 keys=5000 rounds=1 limit=300 ;;
  long) requests=1000000 keys=100000 rounds=3 limit=3600 ;;
  *) am_fail "unknown mode '$mode' (short or long)" ;;
esac
tests=set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,mset
lrange_tests=lrange_100   # each reply is 100 (300) values: a tenth of the requests
[ "$mode" = long ] && lrange_tests=$lrange_tests,lrange_300
ntypes=$(echo "$tests,$lrange_tests" | tr ',' '\n' | wc -l)

# The server of the current run, in a session of its own: whatever happens,
# nothing of it outlives this script.
server_sid=
cleanup() {
  [ -n "$server_sid" ] && kill -KILL -- "-$server_sid" 2>/dev/null
  rm -rf "$AM_TMP"
}
trap cleanup EXIT
# The data set: RESP commands to load it, and the exact replies expected.
cat >"$AM_TMP/dataset.py" <<'PY'
import random, sys
keys, out_dir = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
def resp(*args):
    parts = ["*%d\r\n" % len(args)]
    for a in args:
        a = str(a)
        parts.append("$%d\r\n%s\r\n" % (len(a.encode()), a))
    return "".join(parts)
def value(i):
    n = rng.choice((1, 7, 40, 100, 700, 3000)) if i % 97 else rng.choice((20000, 100000, 524288))
    return ("v%d-" % i + "abcdefghijklmnopqrstuvwxyz0123456789" * (n // 36 + 1))[:max(n, 1)]
load, check, expect = [], [], []
values = {}
for i in range(keys):
    values[i] = value(i)
    load.append(resp("SET", "s:%d" % i, values[i]))
for i in range(0, keys, 10):           # changes after the reload
    values[i] += "+%d" % i
for l in range(keys // 50):
    items = ["e%d-%d" % (l, j) * (1 + j % 5) for j in range(1 + l % 200)]
    load.append(resp("RPUSH", "l:%d" % l, *items))
    check.append(("LRANGE", "l:%d" % l, "0", "-1")); expect.append(items[1:-1] if len(items) > 2 else [""])
for h in range(keys // 50):
    fields = ["f%d" % j for j in range(1 + h % 100)]
    load.append(resp("HSET", "h:%d" % h, *[x for f in fields for x in (f, f * (1 + h % 7))]))
    check.append(("HMGET", "h:%d" % h, *fields)); expect.append([f * (1 + h % 7) for f in fields])
for z in range(keys // 100):
    members = [("m%d" % j, (j * 7919) % 1000) for j in range(1 + z % 300)]
    load.append(resp("ZADD", "z:%d" % z, *[x for m, sc in members for x in (sc, m)]))
    srt = sorted(members, key=lambda t: (t[1], t[0]))
    check.append(("ZRANGE", "z:%d" % z, "0", "-1")); expect.append([m for m, _ in srt])
for n in range(100):
    load.append(resp("SET", "n:%d" % n, n))
    check.append(("GET", "n:%d" % n)); expect.append(["%d" % (n + n * 3)])
open(out_dir + "/load.resp", "w").write("".join(load))
# after DEBUG RELOAD: APPEND to every 10th string, LTRIM every list to drop its ends, INCRBY the counters
change = [resp("APPEND", "s:%d" % i, "+%d" % i) for i in range(0, keys, 10)]
change += [resp("LTRIM", "l:%d" % l, "1", "-2") for l in range(keys // 50)]
change += [resp("INCRBY", "n:%d" % n, n * 3) for n in range(100)]
open(out_dir + "/change.resp", "w").write("".join(change))
for start in range(0, keys, 500):      # strings read back by MGET, 500 at a time
    ids = range(start, min(keys, start + 500))
    check.append(("MGET", *["s:%d" % i for i in ids])); expect.append([values[i] for i in ids])
with open(out_dir + "/check.cmds", "w") as f:
    for c in check:
        f.write(" ".join(c) + "\n")
with open(out_dir + "/expect.txt", "w") as f:
    for e in expect:
        for line in e:
            f.write(line + "\n")
PY
"$python" "$AM_TMP/dataset.py" "$keys" "$AM_TMP" || am_fail "data set generator failed"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One server lifetime. $1: name, $2: "preload" or "".
run() {
  local name=$1 preload=$2 port start pid status
  port=$(free_port) || am_fail "no free port"
  mkdir -p "$AM_TMP/$name"
  local cmd=("$server" --bind 127.0.0.1 --port "$port" --protected-mode yes --save "" --appendonly no
             --dir "$AM_TMP/$name" --dbfilename dump.rdb --enable-debug-command local --daemonize no
             --logfile "$AM_TMP/$name/server.log" --io-threads 2)
  [ -n "$preload" ] && cmd=(env LD_PRELOAD="$AM_LIB" "${cmd[@]}")
  start=$(date +%s%N)
  setsid timeout -k 10 "$limit" "${cmd[@]}" >"$AM_TMP/$name/server.out" 2>"$AM_TMP/$name/server.err" </dev/null &
  pid=$!
  server_sid=$pid
  local rc=(timeout -k 5 120 "$cli" -h 127.0.0.1 -p "$port")
  for _ in $(seq 100); do
    [ "$("${rc[@]}" PING 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  [ "$("${rc[@]}" PING 2>/dev/null)" = PONG ] || { cat "$AM_TMP/$name/server.log"; am_fail "$name: redis-server did not answer"; }
  if [ -n "$preload" ]; then  # the server really runs on ammalloc
    local spid
    spid=$("${rc[@]}" INFO server | tr -d '\r' | sed -n 's/^process_id://p')
    grep -q "$(basename "$AM_LIB")" "/proc/$spid/maps" 2>/dev/null || am_fail "$name: $AM_LIB is not mapped into redis-server"
  fi
  for r in $(seq "$rounds"); do
    for t in "$tests:$requests" "$lrange_tests:$((requests / 10))"; do
      timeout -k 5 "$limit" "$bench" -h 127.0.0.1 -p "$port" -q -n "${t#*:}" -c 32 -P 8 -r 200000 \
        -d $((64 + (r * 2731) % 2000)) -t "${t%%:*}" \
        >>"$AM_TMP/$name/bench.$r" 2>&1 || { cat "$AM_TMP/$name/bench.$r"; am_fail "$name: redis-benchmark failed"; }
    done
    grep -qiE 'error|ERR ' "$AM_TMP/$name/bench.$r" && { cat "$AM_TMP/$name/bench.$r"; am_fail "$name: benchmark errors"; }
  done
  "${rc[@]}" FLUSHALL >/dev/null || am_fail "$name: FLUSHALL failed"
  "${rc[@]}" --pipe <"$AM_TMP/load.resp" >"$AM_TMP/$name/load.out" 2>&1 || { cat "$AM_TMP/$name/load.out"; am_fail "$name: loading the data set failed"; }
  [ "$("${rc[@]}" DEBUG RELOAD)" = OK ] || am_fail "$name: DEBUG RELOAD failed"
  "${rc[@]}" --pipe <"$AM_TMP/change.resp" >"$AM_TMP/$name/change.out" 2>&1 || am_fail "$name: changes failed"
  "${rc[@]}" --raw <"$AM_TMP/check.cmds" >"$AM_TMP/$name/replies.txt" 2>&1 || am_fail "$name: reading back failed"
  "${rc[@]}" INFO memory | tr -d '\r' | grep -E '^(used_memory_human|mem_allocator):' >"$AM_TMP/$name/info"
  "${rc[@]}" SHUTDOWN NOSAVE >/dev/null 2>&1
  wait "$pid"
  status=$?
  kill -KILL -- "-$pid" 2>/dev/null
  server_sid=
  echo "$AM_SCRIPT: $name: port $port, $((rounds * requests)) requests x $ntypes types (a tenth for LRANGE), $keys keys; server $(am_status_text $status)" \
       "after $(soak_ms "$start") ms; $(tr '\n' ' ' <"$AM_TMP/$name/info")"
  [ $status -eq 0 ] || { tail -n 20 "$AM_TMP/$name/server.log"; am_fail "$name: redis-server $(am_status_text $status)"; }
  grep -qE 'crashed|Assertion|Segmentation|ammalloc:' "$AM_TMP/$name/server.log" "$AM_TMP/$name/server.err" &&
    { tail -n 30 "$AM_TMP/$name/server.log"; am_fail "$name: the server log reports a crash"; }
  if ! cmp -s "$AM_TMP/expect.txt" "$AM_TMP/$name/replies.txt"; then
    diff "$AM_TMP/expect.txt" "$AM_TMP/$name/replies.txt" | head -n 10 | cut -c1-200
    am_fail "$name: the data read back differs from the data set"
  fi
}

run system ""
run ammalloc preload
echo "$AM_SCRIPT: PASS ($(wc -l <"$AM_TMP/expect.txt") reply lines identical to the data set, on both)"
exit 0

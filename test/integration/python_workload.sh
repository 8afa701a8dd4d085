#!/usr/bin/env bash
# python_workload.sh LIB BUILDDIR
#
# Runs a deterministic Python workload (json, re, threads, dict/list churn, big
# bytes buffers) with Debian's /usr/bin/python3, first on the system malloc, then
# with LD_PRELOAD=LIB (once with pymalloc in front as usual, once with
# PYTHONMALLOC=malloc so that every Python object comes from LIB), and requires
# byte-identical output. Exit: 0 pass, 1 fail, 77 skip (no /usr/bin/python3).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
python=/usr/bin/python3
[ -x "$python" ] || am_skip "$python not found (Debian's python3 package)"
am_tmpdir
am_check_preload "$python"

script="$AM_TMP/workload.py"
cat >"$script" <<'PY'
import hashlib
import json
import random
import re
import sys
import threading


def digest(obj):
    if isinstance(obj, str):
        obj = obj.encode()
    elif not isinstance(obj, (bytes, bytearray)):
        obj = repr(obj).encode()
    return hashlib.sha256(obj).hexdigest()[:24]


out = []


def report(name, value):
    out.append(name + " " + digest(value))
    print(name, digest(value), flush=True)


# --- json: a large nested structure, dumped and loaded several ways ----------
def make_tree(depth, width, rng):
    if depth == 0:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.random()
        if kind == 1:
            return rng.randint(-10**15, 10**15)
        if kind == 2:
            return "s%d\u00e9\u4e2d%s" % (rng.randrange(10**6), "x" * rng.randrange(40))
        if kind == 3:
            return None
        if kind == 4:
            return [rng.randrange(1000) for _ in range(rng.randrange(8))]
        return rng.random() < 0.5
    if rng.random() < 0.5:
        return {"k%d_%d_%d" % (depth, i, rng.randrange(100)): make_tree(depth - 1, width, rng)
                for i in range(width)}
    return [make_tree(depth - 1, width, rng) for _ in range(width)]


rng = random.Random(20240601)
tree = {"root": [make_tree(6, 6, rng) for _ in range(3)], "meta": {"n": 3}}
text = json.dumps(tree, sort_keys=True)
again = json.loads(text)
assert again == tree
pretty = json.dumps(again, sort_keys=True, indent=2, ensure_ascii=False)
assert json.loads(pretty) == tree
report("json.compact", text)
report("json.pretty", pretty)
report("json.len", (len(text), len(pretty)))
del again, pretty

# --- re: many matches over a generated corpus ---------------------------------
words = ["alpha", "beta", "gamma", "delta", "tensor", "kv-cache", "token", "layer",
         "0x1f", "42", "3.14159", "user@example.org", "2024-06-01", "GET", "/api/v1/x"]
lines = []
for i in range(60000):
    lines.append(" ".join(rng.choice(words) for _ in range(rng.randrange(3, 12))) + " #%d" % i)
corpus = "\n".join(lines)
patterns = [r"\b\d{4}-\d{2}-\d{2}\b", r"[\w.]+@[\w.]+", r"0x[0-9a-f]+", r"\b(\w+)-(\w+)\b",
            r"(?m)^tensor.*#(\d+)$", r"\d+\.\d+", r"(?i)get\s+(/\S+)"]
re_results = []
for p in patterns:
    rx = re.compile(p)
    found = rx.findall(corpus)
    re_results.append((p, len(found), digest(found)))
subbed = re.sub(r"(alpha|beta)", lambda m: m.group(1).upper() * 2, corpus)
split = re.split(r"\s+#", corpus)
spans = [m.span() for m in re.finditer(r"layer token", corpus)]
report("re.findall", re_results)
report("re.sub", subbed)
report("re.split", (len(split), split[::997]))
report("re.finditer", spans)
del subbed, split, corpus, lines

# --- threads: 4 threads building dicts/lists, hashing, sorting ---------------
results = [None] * 4


def worker(idx):
    r = random.Random(1000 + idx)
    d = {}
    for i in range(40000):
        key = "t%d-%d-%d" % (idx, i, r.randrange(10**9))
        d[key] = [r.randrange(10**6) for _ in range(r.randrange(1, 6))]
    items = sorted(d.items(), key=lambda kv: (sum(kv[1]), kv[0]))
    h = hashlib.sha256()
    blob = bytearray()
    for k, v in items:
        h.update(k.encode())
        blob += bytes(x % 256 for x in v)
        if len(blob) > 1 << 16:
            h.update(hashlib.sha512(bytes(blob)).digest())
            blob = bytearray()
    chunks = sorted((bytes(r.randrange(256) for _ in range(r.randrange(1, 200))) for _ in range(2000)))
    results[idx] = (len(d), h.hexdigest(), digest(chunks), items[0][0], items[-1][0])


threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
report("threads", results)

# --- dict/list churn -----------------------------------------------------------
d = {}
for i in range(150000):
    d[(i * 7919) % 1000003] = ("v%d" % i, i * i, [i] * (i % 5))
for i in range(0, 150000, 3):
    d.pop((i * 7919) % 1000003, None)
lst = sorted(d.items())
acc = 0
for k, (s, sq, small) in lst:
    acc = (acc * 31 + k + sq + len(s) + len(small)) % (1 << 61)
sets = set(range(0, 200000, 3)) ^ set(range(0, 200000, 5))
nested = [[j for j in range(i % 50)] for i in range(40000)]
strs = ["".join(chr(97 + (i * j) % 26) for j in range(i % 64)) for i in range(30000)]
strs.sort(key=lambda s: (len(s), s))
report("dict.churn", (len(d), acc, lst[:5], lst[-5:]))
report("set.xor", (len(sets), sum(sets), sorted(sets)[:20]))
report("list.nested", sum(map(len, nested)))
report("str.sort", strs[::1001])
del d, lst, sets, nested, strs

# --- big buffers: large malloc/realloc through bytes and bytearray ----------
buf = bytearray()
for i in range(400):
    buf += bytes([i % 251]) * (50000 + i * 301)
big = bytes(buf)
joined = b"".join(big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20))
assert joined == big
report("bytes.big", (len(big), hashlib.sha256(big).hexdigest()))
del buf, big, joined

print("total", digest("\n".join(out)))
PY

run_python() { # $1 = label, rest = extra env assignments
  local label=$1
  shift
  { timeout -k 10 180 env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP -u PYTHONMALLOC \
      PYTHONHASHSEED=0 "$@" "$python" -s "$script" >"$AM_TMP/$label.out" 2>"$AM_TMP/$label.err"
    status=$?; } 2>/dev/null
  if [ "$status" -ne 0 ]; then
    echo "--- $label stderr:"
    tail -n 30 "$AM_TMP/$label.err"
    am_fail "python3 ($label) $(am_status_text "$status")"
  fi
}

run_python baseline
run_python preload LD_PRELOAD="$AM_LIB"
run_python preload-pymalloc-off LD_PRELOAD="$AM_LIB" PYTHONMALLOC=malloc
cat "$AM_TMP/baseline.out"
for label in preload preload-pymalloc-off; do
  if ! cmp -s "$AM_TMP/baseline.out" "$AM_TMP/$label.out"; then
    echo "--- diff baseline vs $label:"
    diff "$AM_TMP/baseline.out" "$AM_TMP/$label.out" | head -n 40
    am_fail "output with LD_PRELOAD ($label) differs from the output without it"
  fi
done
echo "$AM_SCRIPT: PASS (outputs identical, $(wc -l <"$AM_TMP/baseline.out") lines)"
exit 0

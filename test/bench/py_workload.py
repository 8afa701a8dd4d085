"""py_workload — a python3 workload for scripts/bench.sh (real-program row).

Builds records as dicts, lists and strings, round-trips them through json,
groups, sorts and formats them: the allocation mix of a typical Python
service.  Deterministic: prints a digest that must be the same under every
allocator.   usage: python3 py_workload.py [scale]
"""
import hashlib
import json
import random
import sys


def make_records(rng, n):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
             "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi"]
    out = []
    for i in range(n):
        tags = [rng.choice(words) for _ in range(rng.randint(1, 6))]
        out.append({
            "id": i,
            "name": "-".join(tags) + "_" + str(rng.randint(0, 10**6)),
            "score": rng.random() * 1000.0,
            "tags": tags,
            "attrs": {w: rng.randint(0, 100) for w in rng.sample(words, rng.randint(0, 5))},
            "text": " ".join(rng.choice(words).upper() for _ in range(rng.randint(5, 40))),
        })
    return out


def one_round(rng, n, h):
    recs = make_records(rng, n)
    blob = json.dumps(recs, sort_keys=True)
    back = json.loads(blob)
    groups = {}
    for r in back:
        for t in r["tags"]:
            groups.setdefault(t, []).append(r)
    summary = []
    for tag in sorted(groups):
        rs = sorted(groups[tag], key=lambda r: (-r["score"], r["id"]))
        top = [r["name"] for r in rs[:10]]
        words = {}
        for r in rs:
            for w in r["text"].split():
                words[w] = words.get(w, 0) + 1
        summary.append("%s:%d:%s:%s" % (tag, len(rs), ",".join(top),
                                        ";".join("%s=%d" % kv for kv in sorted(words.items()))))
    lines = "\n".join(summary)
    h.update(lines.encode())
    h.update(str(len(blob)).encode())
    # string building and slicing churn
    s = []
    for r in back[: n // 2]:
        s.append(("%(id)08d|%(name)s|%(score).3f" % r)[::-1])
    h.update("".join(sorted(s)).encode())
    return len(blob)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(round(6 * scale)))
    rng = random.Random(12345)
    h = hashlib.sha256()
    total = 0
    for _ in range(rounds):
        total += one_round(rng, 20000, h)
    print("rounds=%d json_bytes=%d digest=%s" % (rounds, total, h.hexdigest()))


if __name__ == "__main__":
    main()

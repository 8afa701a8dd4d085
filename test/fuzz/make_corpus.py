#!/usr/bin/env python3
"""Writes the seed corpus of test/fuzz/heap_fuzz.cc into test/fuzz/corpus/.

Usage: test/fuzz/make_corpus.py [outdir]

Each seed is a small program in heap_fuzz's input format: byte 0 picks the
number of threads (1 + b % 4), then operations, each an opcode byte and its
arguments. The opcode values follow heap_fuzz.cc's OpTable (weights in the
same order: keep WEIGHTS in step with it). Seeds are deterministic (a fixed
random seed), so rerunning this rewrites the same files.
"""
import os
import random
import struct
import sys

# (kind, weight) in OpTable's order; the rest of the 256 values are malloc.
WEIGHTS = [
    ("free", 40), ("free_sized", 16), ("calloc", 12), ("realloc", 22), ("reallocarray", 4),
    ("memalign", 10), ("posix_memalign", 10), ("aligned_alloc", 6), ("valloc", 3), ("pvalloc", 3),
    ("new", 8), ("usable", 4), ("flush", 3), ("release", 2), ("reset", 1),
    ("cache_max", 2), ("check_all", 2), ("impossible", 3), ("switch", 36), ("restart", 3),
]
OPCODE = {}
_at = 0
for _k, _w in WEIGHTS:
    OPCODE[_k] = _at
    _at += _w
OPCODE["malloc"] = _at
assert _at < 256

KiB, MiB = 1024, 1024 * 1024
EDGES = [16, 128, 256, 1024, 4096, 8 * KiB, 32 * KiB, 64 * KiB, 128 * KiB, 256 * KiB,
         512 * KiB, 1 * MiB, 2 * MiB, 4 * MiB]
ODD_ALIGNS = [0, 1, 2, 3, 8, 24, 48, 100, 4097, 1 << 63, (1 << 64) - 1]


def size(n):
    """Encodes a size as decode_size() reads it."""
    if n < 2048:
        return bytes([n >> 8, n & 0xFF])
    if n < 256 * KiB:
        return bytes([128 + (n >> 16)]) + struct.pack("<H", n & 0xFFFF)
    for i, e in enumerate(EDGES):
        if -128 <= n - e <= 127:
            c = next(c for c in range(192, 248) if c % len(EDGES) == i)
            return bytes([c, (n - e) & 0xFF])
    pages, rest = divmod(n, 4096)
    if 1 <= pages <= 1024 and rest < 256:
        return bytes([248]) + struct.pack("<H", pages - 1) + bytes([rest])
    pages = min(max(1, -(-n // 4096)), 8192)
    return bytes([255]) + struct.pack("<H", pages - 1)


def align(a):
    """Encodes an alignment as decode_align() reads it."""
    if a in ODD_ALIGNS and (a == 0 or a & (a - 1) or a >= 1 << 24):
        i = ODD_ALIGNS.index(a)
        return bytes([next(c for c in range(240, 256) if c % len(ODD_ALIGNS) == i)])
    assert a & (a - 1) == 0 and a < 1 << 24, a
    return bytes([a.bit_length() - 1])


def op(kind, *args):
    return bytes([OPCODE[kind]]) + b"".join(args)


def u8(v):
    return bytes([v & 0xFF])


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def malloc(n): return op("malloc", size(n))
def free(i=0): return op("free", u16(i))
def free_sized(i=0): return op("free_sized", u16(i))
def calloc(count, total): return op("calloc", u8(count - 1), size(total))
def realloc(i, n): return op("realloc", u16(i), size(n))
def realloc_null(n): return op("realloc", u16(0xFFFF), size(n))
def reallocarray(i, n): return op("reallocarray", u16(i), size(n))
def memalign(a, n): return op("memalign", align(a), size(n))
def posix_memalign(a, n): return op("posix_memalign", align(a), size(n))
def aligned_alloc(a, n): return op("aligned_alloc", align(a), size(n))
def valloc(n): return op("valloc", size(n))
def pvalloc(n): return op("pvalloc", size(n))
def new(a, n): return op("new", align(a), size(n))
def usable(i=0): return op("usable", u16(i))
def flush(): return op("flush")
def release(v=0): return op("release", u8(v))
def reset(): return op("reset")
def cache_max(v): return op("cache_max", u8(v))
def check_all(): return op("check_all")
def impossible(v): return op("impossible", u8(v))
def switch(t): return op("switch", u8(t))
def restart(t): return op("restart", u8(t))


def threads(n):
    return bytes([n - 1])


def seeds():
    rnd = random.Random(8)
    s = {}
    s["small_pairs"] = threads(1) + b"".join(malloc(n) + free(0) for n in range(0, 2048, 97))
    s["small_many"] = threads(1) + b"".join(malloc(rnd.randrange(1, 1024)) for _ in range(120)) + \
        b"".join(free(rnd.randrange(200)) for _ in range(60)) + check_all()
    s["class_edges"] = threads(1) + b"".join(malloc(e + d) for e in EDGES[:10] for d in (-1, 0, 1)) + check_all()
    s["medium"] = threads(1) + b"".join(malloc(rnd.randrange(2048, 256 * KiB)) for _ in range(30)) + \
        b"".join(free_sized(rnd.randrange(40)) for _ in range(15))
    s["large"] = threads(1) + malloc(300 * KiB) + malloc(1 * MiB + 7) + malloc(3 * MiB) + free(1) + \
        malloc(512 * KiB) + release(1) + free(0) + malloc(2 * MiB)
    s["huge"] = threads(1) + malloc(32 * MiB) + malloc(16 * MiB) + free(0) + malloc(8 * MiB) + usable(1)
    s["calloc_reuse"] = threads(1) + b"".join(malloc(n) for n in (64, 4096, 300 * KiB)) + free(0) + free(0) + \
        free(0) + calloc(4, 64) + calloc(16, 4096) + calloc(3, 300 * KiB) + calloc(64, 2 * MiB)
    s["realloc_grow"] = threads(1) + malloc(1) + b"".join(realloc(0, n) for n in
                                                          (8, 17, 100, 1000, 5000, 70 * KiB, 256 * KiB,
                                                           257 * KiB, 1 * MiB, 3 * MiB))
    s["realloc_shrink"] = threads(1) + malloc(3 * MiB) + b"".join(realloc(0, n) for n in
                                                                 (2 * MiB, 1 * MiB, 300 * KiB, 200 * KiB,
                                                                  1000, 999, 500, 10, 0))
    s["realloc_null"] = threads(2) + realloc_null(100) + realloc_null(1 * MiB) + switch(1) + realloc(0, 0) + \
        reallocarray(0, 5000) + reallocarray(0, 7)
    s["memalign_all"] = threads(1) + b"".join(memalign(1 << k, 24) for k in range(0, 24, 2)) + check_all()
    s["posix_memalign_all"] = threads(1) + b"".join(posix_memalign(1 << k, 3000) for k in range(1, 24, 3)) + \
        posix_memalign(3, 10) + posix_memalign(24, 10) + posix_memalign(1 << 63, 10)
    s["aligned_alloc_all"] = threads(1) + b"".join(aligned_alloc(1 << k, 100 * k) for k in range(0, 24, 2)) + \
        aligned_alloc(48, 10) + aligned_alloc(0, 10) + aligned_alloc((1 << 64) - 1, 1)
    s["memalign_odd"] = threads(1) + b"".join(memalign(a, 33) for a in ODD_ALIGNS)
    s["aligned_large"] = threads(1) + memalign(1 * MiB, 1 * MiB) + memalign(64 * KiB, 300 * KiB) + \
        posix_memalign(8 * MiB, 5000) + free_sized(0) + free_sized(0) + free_sized(0)
    s["valloc_pvalloc"] = threads(1) + valloc(1) + valloc(5000) + pvalloc(0) + pvalloc(4097) + \
        pvalloc(300 * KiB) + free_sized(2) + free_sized(1)
    s["new_forms"] = threads(1) + new(1, 10) + new(1, 11) + new(64, 100) + new(4096, 5000) + \
        new(64 * KiB, 1 * MiB) + free_sized(0) + free(0)
    s["impossible_all"] = threads(1) + malloc(100) + b"".join(impossible(v) for v in range(18)) + check_all()
    s["cache_max_zero"] = threads(2) + cache_max(0) + b"".join(malloc(64) for _ in range(50)) + switch(1) + \
        b"".join(free(0) for _ in range(50))
    s["cache_max_cycle"] = threads(1) + b"".join(cache_max(v) + malloc(128) + malloc(128) + free(0)
                                                 for v in range(5))
    s["flush_release_reset"] = threads(3) + malloc(64) + malloc(5000) + switch(1) + malloc(64) + free(0) + \
        flush() + switch(2) + release(0) + reset() + free(0) + release(1)
    s["cross_thread_pingpong"] = threads(2) + b"".join(
        switch(0) + b"".join(malloc(48) for _ in range(8)) + switch(1) + b"".join(free(0) for _ in range(8))
        for _ in range(12))
    s["cross_thread_4"] = threads(4) + b"".join(
        switch(t) + malloc(rnd.randrange(16, 4096)) + free(rnd.randrange(50)) for t in range(4) for _ in range(10))
    s["thread_restart"] = threads(4) + malloc(64) + malloc(100) + restart(0) + switch(1) + malloc(64) + \
        restart(1) + switch(2) + free(0) + restart(2) + restart(3) + free(0) + free(0)
    s["restart_with_cache"] = threads(2) + switch(1) + b"".join(malloc(32) for _ in range(40)) + \
        b"".join(free(0) for _ in range(40)) + restart(1) + switch(0) + b"".join(malloc(32) for _ in range(40))
    s["reset_other_caches"] = threads(4) + b"".join(switch(t) + malloc(256) + malloc(256) + free(0)
                                                    for t in range(4)) + switch(0) + reset() + usable(0)
    s["free_null"] = threads(1) + free(0) + free_sized(0) + usable(0) + realloc(0, 5)
    s["check_all_mixed"] = threads(2) + malloc(10) + calloc(2, 200) + memalign(128, 70) + new(1, 9) + \
        switch(1) + valloc(30) + check_all() + usable(3)
    s["span_fill"] = threads(1) + b"".join(malloc(48) for _ in range(200)) + \
        b"".join(free(i * 7 % 190) for i in range(100)) + b"".join(malloc(48) for _ in range(100))
    s["page_boundary"] = threads(1) + b"".join(malloc(8 * KiB * k + d) for k in (1, 2, 31, 32, 33)
                                               for d in (-16, 0, 16)) + check_all()
    s["large_coalesce"] = threads(1) + b"".join(malloc(300 * KiB) for _ in range(6)) + free(1) + free(2) + \
        free(1) + malloc(900 * KiB) + release(1) + malloc(600 * KiB)
    s["mixed_random_1"] = threads(3) + b"".join(bytes([rnd.randrange(256)]) for _ in range(600))
    s["mixed_random_2"] = threads(4) + b"".join(bytes([rnd.randrange(256)]) for _ in range(1500))
    s["mixed_random_3"] = threads(2) + b"".join(
        rnd.choice([malloc(rnd.randrange(4096)), free(rnd.randrange(100)), realloc(rnd.randrange(100),
                    rnd.randrange(8192)), switch(rnd.randrange(4)), memalign(1 << rnd.randrange(13), 100),
                    free_sized(rnd.randrange(100)), calloc(3, rnd.randrange(3000))])
        for _ in range(400))
    s["mixed_random_large"] = threads(2) + b"".join(
        rnd.choice([malloc(rnd.randrange(256 * KiB, 4 * MiB)), free(rnd.randrange(30)),
                    realloc(rnd.randrange(30), rnd.randrange(8 * MiB)), switch(rnd.randrange(4)),
                    release(rnd.randrange(2))])
        for _ in range(60))
    s["empty_threads"] = threads(4)
    s["many_small_threads"] = threads(4) + b"".join(switch(i % 4) + malloc(i % 300) for i in range(300))
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"make_corpus.py: {len(seeds())} seeds in {out}")


if __name__ == "__main__":
    main()

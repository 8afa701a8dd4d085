#!/usr/bin/env bash
# pictures.sh LIB BUILDDIR AMMALLOC_RUN — ammalloc-run's own SVG pictures:
#  - --timeline FILE.csv: samples of /usr/bin/python3 growing to ~150 MiB and
#    freeing it; the CSV has every column and follows the growth; FILE.svg is
#    well-formed XML (parsed by python3's xml.etree) with one polyline per
#    series, named;
#  - --flamegraph FILE.svg: well-formed, frames named after the program's
#    functions (profile_sites: site_seventy), widths adding up to the root.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"
am_init "$@"
am_tmpdir
pp_need_run
pp_need_python

"$run" --timeline "$AM_TMP/tl.csv" --interval 40 -- $py -c '
import time
x = []
for i in range(30):
    x.append(bytearray(5 << 20)); time.sleep(0.03)
del x
time.sleep(0.8)   # several samples after the free, even on a loaded machine
' 2>"$AM_TMP/err" || am_fail "timeline run failed: $(cat "$AM_TMP/err")"
grep -q "^ammalloc-run: timeline: [0-9]* samples of process [0-9]* in $AM_TMP/tl.csv, chart $AM_TMP/tl.svg" "$AM_TMP/err" \
  || am_fail "no timeline line: $(cat "$AM_TMP/err")"
$py - "$AM_TMP/tl.csv" "$AM_TMP/tl.svg" <<'PY' || am_fail "timeline checks failed"
import csv, sys, xml.etree.ElementTree as ET
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["time_s", "in_use", "pageheap_free", "central_free", "transfer_free", "thread_free",
        "heap_rss", "hugepage", "released", "process_rss"]
assert list(rows[0].keys()) == cols, rows[0].keys()
assert len(rows) >= 5, len(rows)
times = [float(r["time_s"]) for r in rows]
assert times == sorted(times) and times[0] == 0.0
peak = max(int(r["in_use"]) for r in rows)
assert peak >= 100 << 20, peak                           # the growth is seen
assert int(rows[-1]["in_use"]) < peak // 4, rows[-1]     # and the free
assert max(int(r["process_rss"]) for r in rows) >= peak   # the process holds the heap
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[2]).getroot()                   # well-formed XML
series = [p.get("data-series") for p in root.iter("{http://www.w3.org/2000/svg}polyline")]
assert series == cols[1:], series
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
for c in cols[1:]:
    assert c in texts, c                                 # the legend names every series
for p in root.iter("{http://www.w3.org/2000/svg}polyline"):
    assert len(p.get("points").split()) == len(rows)
print("timeline: %d samples, peak %.1f MiB" % (len(rows), peak / 2**20))
PY

command -v google-pprof >/dev/null 2>&1 || am_skip "google-pprof not installed: flame graph not tested"
"$run" --flamegraph "$AM_TMP/fg.svg" --set PROFILE_SAMPLE=64K -- "$AM_BUILDDIR/profile_sites" 0.3 >/dev/null 2>"$AM_TMP/err" \
  || am_fail "flamegraph run failed: $(cat "$AM_TMP/err")"
grep -q "^ammalloc-run: flame graph of .* in $AM_TMP/fg.svg" "$AM_TMP/err" || am_fail "no flame graph line: $(cat "$AM_TMP/err")"
grep -q "explore it" "$AM_TMP/err" && am_fail "explore hints for a scratch profile that is gone"
$py - "$AM_TMP/fg.svg" <<'PY' || am_fail "flame graph checks failed"
import re, sys, xml.etree.ElementTree as ET
S = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
frames = []
for g in root.iter(S + "g"):
    title = g.find(S + "title").text
    rect = g.find(S + "rect")
    m = re.match(r"(.*) \((\d+) bytes, ([0-9.]+)%\)$", title)
    assert m, title
    frames.append((m.group(1), int(m.group(2)), float(rect.get("width")), float(rect.get("y"))))
names = {f[0] for f in frames}
assert "all" in names and "main" in names, sorted(names)[:20]
assert any(n.startswith("site_seventy") for n in names), sorted(names)
root_bytes = [f for f in frames if f[0] == "all"][0][1]
main_bytes = sum(f[1] for f in frames if f[0] == "main")
assert main_bytes <= root_bytes and main_bytes >= root_bytes * 0.9, (main_bytes, root_bytes)
seventy = sum(f[1] for f in frames if f[0].startswith("site_seventy"))
assert 0.5 <= seventy / root_bytes <= 0.9, seventy / root_bytes   # profile_sites: ~70% there
print("flame graph: %d frames, site_seventy %.0f%%" % (len(frames), 100 * seventy / root_bytes))
PY
echo "pictures: PASS"

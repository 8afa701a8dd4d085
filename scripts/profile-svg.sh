#!/usr/bin/env bash
# Renders a heap profile as google-pprof's call-graph SVG, and fails when the
# SVG is empty (google-pprof --svg needs graphviz's `dot`; without it, it writes
# an empty file and exits 0). Installs graphviz first (scripts/deps.sh).
# Usage: scripts/profile-svg.sh PROGRAM PROFILE OUT.svg [google-pprof options...]
set -eu
[ $# -ge 3 ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
prog=$1 prof=$2 svg=$3; shift 3
"$(dirname "$0")/deps.sh" graphviz
google-pprof --svg "$@" "$prog" "$prof" >"$svg" 2>/dev/null || true
if ! grep -q '<svg' "$svg"; then
  echo "profile-svg: google-pprof wrote no SVG to $svg (is graphviz's dot installed?)" >&2
  exit 1
fi
echo "profile-svg: $svg ($(wc -c <"$svg") bytes)"

# shellcheck shell=bash
# common.sh — sourced by the soak scripts; not run on its own.
#
# Same calling convention as test/integration (SCRIPT LIB BUILDDIR [mode]; exit
# 0 pass, 1 fail, 77 skip), whose helpers (am_init, am_fail, am_skip,
# am_tmpdir, am_check_preload, am_status_text) it loads, plus:
#
# soak_run LIMIT OUT ERR COMMAND [ARGS...]
#   Runs COMMAND (e.g. `env LD_PRELOAD=... prog`) in a session of its own under
#   `timeout LIMIT`, stdout to OUT and stderr to ERR, and returns its status.
#   Afterwards every process left in that session's group is killed with
#   SIGKILL: a test program's forked children must not outlive the soak (a
#   process whose last thread is gone while a helper thread that blocks every
#   signal lives on does not even take SIGTERM).
soak_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/common.sh
. "$soak_here/../integration/common.sh"

soak_run() {
  local limit=$1 out=$2 err=$3 pid status
  shift 3
  setsid timeout -k 10 "$limit" "$@" >"$out" 2>"$err" </dev/null &
  pid=$!
  wait "$pid"
  status=$?
  kill -KILL -- "-$pid" 2>/dev/null
  return $status
}

# soak_ms START_NS: milliseconds since START_NS (from `date +%s%N`).
soak_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

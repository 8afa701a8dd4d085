# common.sh — sourced by the test/profile scripts; adds to
# test/integration/common.sh (am_init, am_fail, am_skip, am_tmpdir, ...).
# shellcheck source=../integration/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/common.sh"

# pp_need_pprof: skip without google-pprof (Debian: google-perftools) or the
# binutils it runs (nm, objdump, addr2line).
pp_need_pprof() {
  command -v google-pprof >/dev/null 2>&1 || am_skip "google-pprof not installed (Debian: google-perftools)"
  command -v nm >/dev/null 2>&1 || am_skip "nm not installed (Debian: binutils)"
}

# pp_need_run: $run, the ammalloc-run script the test drives (its first extra
# argument); fails if it is missing.
pp_need_run() {
  run=${AM_ARGS[0]:-}
  [ -x "$run" ] || am_fail "ammalloc-run not found: $run"
}

# pp_need_python: $py, Debian's python3 (the python3 on PATH may be another
# build, without Debian's packages); skips without it.
pp_need_python() {
  py=/usr/bin/python3
  [ -x "$py" ] || am_skip "$py not installed"
}

# pp_newest PREFIX: the newest heap profile written with that prefix.
pp_newest() {
  ls -t "$1".*.heap 2>/dev/null | grep -v '\.leaks\.heap$' | head -n 1
}

# pp_flat TEXT FUNCTION: the "flat" MB google-pprof --text gives FUNCTION (0 if absent).
pp_flat() {
  awk -v f="$2" '$6 == f { print $1; found = 1; exit } END { if (!found) print 0 }' <<<"$1"
}

# pp_check_no_internal TEXT: no ammalloc frame may appear in a profile's output.
pp_check_no_internal() {
  if grep -E 'am::|alloc_miss|free_miss|alloc_sampled|profiler_record|stacktrace_capture|am_malloc' <<<"$1" >/dev/null; then
    am_fail "ammalloc's own frames in the profile:
$1"
  fi
}

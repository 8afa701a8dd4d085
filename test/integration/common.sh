# common.sh — sourced by the integration test scripts; not run on its own.
#
# Every script is called by meson as  SCRIPT LIB BUILDDIR [more args]
#   LIB       absolute path of libammalloc.so (what LD_PRELOAD gets)
#   BUILDDIR  the build directory holding the compiled test programs
# and exits 0 (pass), 1 (fail) or 77 (skip, with the reason on stdout).
#
# LD_PRELOAD is set only for the program under test, through `env` placed right
# before it: `timeout ... env LD_PRELOAD="$AM_LIB" prog`. bash, timeout, cmp, awk
# and the other helpers run on the system malloc. Children of the program under
# test (cc1plus under g++, sort's helpers) inherit it, which is intended.

AM_SCRIPT=$(basename "$0" .sh)

am_fail() {
  echo "$AM_SCRIPT: FAIL: $*"
  exit 1
}

am_skip() {
  echo "$AM_SCRIPT: SKIP: $*"
  exit 77
}

# am_init "$@": checks the two standard arguments, sets AM_LIB and AM_BUILDDIR
# and leaves the rest of the arguments in AM_ARGS.
am_init() {
  if [ $# -lt 2 ]; then
    echo "usage: $0 /path/to/libammalloc.so BUILDDIR [args...]"
    exit 1
  fi
  AM_LIB=$1
  AM_BUILDDIR=$2
  shift 2
  # shellcheck disable=SC2034 # used by the scripts that source this file
  AM_ARGS=("$@")
  case "$AM_LIB" in
    /*) ;;
    *) AM_LIB="$PWD/$AM_LIB" ;; # LD_PRELOAD wants a path that survives a cd
  esac
  [ -f "$AM_LIB" ] || am_fail "library not found: $AM_LIB"
  [ -d "$AM_BUILDDIR" ] || am_fail "build directory not found: $AM_BUILDDIR"
  command -v timeout >/dev/null 2>&1 || am_skip "timeout(1) not found"
  ulimit -c 0 2>/dev/null || true # deliberate aborts must not leave core files
}

# am_tmpdir: creates AM_TMP (under $TMPDIR or /tmp), removed on exit.
am_tmpdir() {
  AM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ammalloc-$AM_SCRIPT.XXXXXX") || am_fail "mktemp failed"
  trap 'rm -rf "$AM_TMP"' EXIT
}

# am_check_preload PROGRAM: proves that the dynamic loader really maps LIB into
# PROGRAM (a library that cannot be preloaded is only warned about by ld.so,
# and the program would then silently run on glibc's malloc and pass).
am_check_preload() {
  local prog=$1 out
  out=$(timeout -k 5 30 env LD_PRELOAD="$AM_LIB" LD_TRACE_LOADED_OBJECTS=1 "$prog" 2>&1)
  case "$out" in
    *"cannot be preloaded"* | *"ERROR: ld.so"*)
      am_fail "ld.so cannot preload $AM_LIB into $prog: $out" ;;
  esac
  case "$out" in
    *"$AM_LIB"* | *"$(basename "$AM_LIB")"*) ;;
    *) am_fail "$AM_LIB does not appear among the objects loaded into $prog: $out" ;;
  esac
}

# am_status_text STATUS: a short explanation of an exit status from timeout.
am_status_text() {
  case "$1" in
    0) echo "exit 0" ;;
    124) echo "timed out (status 124)" ;;
    137) echo "killed (status 137: SIGKILL, timeout -k or the OOM killer)" ;;
    *)
      if [ "$1" -gt 128 ]; then
        echo "killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null || echo '?'), status $1)"
      else
        echo "exit status $1"
      fi ;;
  esac
}

#!/usr/bin/env bash
# Installs the Debian packages ammalloc needs to build, test and run its example,
# if any is missing. Idempotent; quiet when everything is there.
# Usage: scripts/deps.sh [extra-package...]
set -eu
# clang + libclang-rt-14-dev: the libFuzzer target (scripts/fuzz.sh, test/fuzz);
# redis-server, redis-tools, sqlite3, libpython3.11-testsuite: the soak tests
# (test/soak) run those programs and Python's own test modules under ammalloc.
# cmake: test/install builds a CMake consumer against `meson install`.
# (graphviz, for google-pprof --svg, is asked for by scripts/profile-svg.sh.)
pkgs=(meson ninja-build g++ gcc pkg-config binutils libunwind-dev libnuma-dev catch2
      google-perftools python3 coreutils time valgrind cmake
      clang libclang-rt-14-dev redis-server redis-tools sqlite3 libpython3.11-testsuite "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "scripts/deps.sh: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

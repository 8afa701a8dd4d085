# Shared by scripts/bench.sh and scripts/fastpath-cost.sh: Debian package
# installs, and where each allocator's shared object is (the peers from their
# Debian packages, ammalloc from build/ or --lib, built if missing).
# The caller defines note() and die(), the ALLOCS array, LIB (from --lib, or
# empty) and OUT (a directory for logs); this fills LIBS[alloc] with the path
# to preload and NA_WHY[alloc] with why an allocator is not available.

APT_UPDATED=0
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
ensure_pkgs() {  # ensure_pkgs PKG... ; returns non-zero if any is still missing
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $INSTALL = 0 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    note "missing packages: ${missing[*]} (not installing: need root, apt-get and no --no-install)"
    return 1
  fi
  note "installing ${missing[*]} ..."
  if [ $APT_UPDATED = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || note "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null 2>&1 || { note "apt-get install ${missing[*]} failed"; return 1; }
  return 0
}

declare -A LIBS      # allocator -> absolute path of the preloaded .so
declare -A NA_WHY    # allocator -> why it is n/a

multiarch=$(gcc -print-multiarch 2>/dev/null || true)
find_lib() {  # find_lib PKG REGEX GLOB... -> path on stdout
  local pkg=$1 re=$2 f d g
  shift 2
  f=$(dpkg -L "$pkg" 2>/dev/null | grep -E "$re" | head -n1)
  if [ -n "$f" ] && [ -e "$f" ]; then echo "$f"; return 0; fi
  for d in ${multiarch:+/usr/lib/$multiarch /lib/$multiarch} /usr/lib64 /usr/lib /lib64 /lib; do
    for g in "$@"; do
      for f in "$d"/$g; do [ -e "$f" ] && { echo "$f"; return 0; }; done
    done
  done
  return 1
}

want_alloc() { case " ${ALLOCS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

set_peer() {  # set_peer NAME PKG REGEX GLOB...
  local name=$1 pkg=$2 f
  want_alloc "$name" || return 0
  ensure_pkgs "$pkg" || true
  if f=$(find_lib "$pkg" "${@:3}"); then LIBS[$name]=$f; else NA_WHY[$name]="$pkg not installed"; fi
}
find_peers() {
  set_peer glibc libc6 '/libc\.so\.6$' 'libc.so.6'
  set_peer jemalloc libjemalloc2 '/libjemalloc\.so\.2$' 'libjemalloc.so.2'
  set_peer mimalloc libmimalloc2.0 '/libmimalloc\.so\.2$' 'libmimalloc.so.2' 'libmimalloc.so.2.*'
  set_peer tcmalloc libtcmalloc-minimal4 '/libtcmalloc_minimal\.so\.4$' 'libtcmalloc_minimal.so.4'
}

# ammalloc: --lib, or build/libammalloc.so (built with meson if missing).
# ammalloc-harden (bench.sh) is the same library, run with AMMALLOC_HARDEN=1.
find_ammalloc() {
  if want_alloc ammalloc || want_alloc ammalloc-harden; then
    if [ -n "$LIB" ]; then
      [ -f "$LIB" ] || NA_WHY[ammalloc]="--lib $LIB does not exist"
    else
      LIB=build/libammalloc.so
      if [ ! -f "$LIB" ]; then
        if [ -f meson.build ]; then
          note "building ammalloc (meson setup build --buildtype=release && ninja -C build) ..."
          if ! command -v meson >/dev/null || ! command -v ninja >/dev/null; then
            ensure_pkgs meson ninja-build || true
          fi
          { [ -f build/build.ninja ] || meson setup build --buildtype=release; } >"$OUT/ammalloc-build.log" 2>&1 &&
            ninja -C build >>"$OUT/ammalloc-build.log" 2>&1 ||
            note "ammalloc build failed, see $OUT/ammalloc-build.log"
        fi
        [ -f "$LIB" ] || NA_WHY[ammalloc]="build/libammalloc.so missing and could not be built"
      fi
    fi
    if [ -z "${NA_WHY[ammalloc]:-}" ]; then
      LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
      if LD_PRELOAD=$LIB /bin/true 2>/dev/null; then LIBS[ammalloc]=$LIB
      else NA_WHY[ammalloc]="preloading $(basename "$LIB") into /bin/true failed"; fi
    fi
    if want_alloc ammalloc-harden; then
      LIBS[ammalloc-harden]=${LIBS[ammalloc]:-}
      [ -n "${LIBS[ammalloc-harden]}" ] || { unset 'LIBS[ammalloc-harden]'; NA_WHY[ammalloc-harden]=${NA_WHY[ammalloc]}; }
    fi
  fi
}

#!/usr/bin/env bash
# install.sh BUILDDIR SOURCE_ROOT VERSION — `meson install --destdir` and what
# a user does next (README "Install and link"):
#  - the files are where the README says: libraries (shared and the static
#    core), headers with <ammalloc/version.h>, pkg-config files, the CMake
#    package, man pages ammalloc(3) and ammalloc-run(1) listing every option,
#    and ammalloc-run (which finds the installed library: --version);
#  - a CMake project (find_package(ammalloc), targets ammalloc::ammalloc,
#    ::core, ::core_static, ::cxx) and a pkg-config project build against it
#    and run; the pkg-config program shows ammalloc's AMMALLOC_VERBOSE banner.
set -u
build=$(cd "$1" && pwd); root=$2; version=$3
fail() { echo "install: FAIL: $*"; exit 1; }
skip() { echo "install: SKIP: $*"; exit 77; }
command -v cmake >/dev/null || skip "cmake not installed (scripts/deps.sh installs it)"
command -v pkg-config >/dev/null || skip "pkg-config not installed"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ammalloc-install.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install"; }
prefix=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json, sys; o = {x["name"]: x["value"] for x in json.load(sys.stdin)}; print(o["prefix"], o["libdir"], o["mandir"], o["bindir"])')
read -r pfx libdir mandir bindir <<<"$prefix"
P=$dest$pfx; L=$P/$libdir
for f in "$L/libammalloc.so.0" "$L/libammalloc_core.so.0" "$L/libammalloc_cxx.so.0" "$L/libammalloc_core.a" \
         "$P/include/ammalloc/ammalloc.h" "$P/include/ammalloc/version.h" "$L/pkgconfig/ammalloc.pc" \
         "$L/cmake/ammalloc/ammallocConfig.cmake" "$L/cmake/ammalloc/ammallocConfigVersion.cmake" \
         "$P/$mandir/man3/ammalloc.3" "$P/$mandir/man1/ammalloc-run.1" "$P/$bindir/ammalloc-run"; do
  [ -e "$f" ] || fail "not installed: ${f#$dest}"
done
grep -q "define AMMALLOC_VERSION \"$version\"" "$P/include/ammalloc/version.h" || fail "version.h does not say $version"
# The man page documents every option of the table.
for name in $("$build/tools/ammalloc-options" list | cut -f1); do
  grep -q "^\.B $name\$" "$P/$mandir/man3/ammalloc.3" || fail "ammalloc(3) misses $name"
  grep -q "^\.B $name\$" "$P/$mandir/man1/ammalloc-run.1" || fail "ammalloc-run(1) misses $name"
done
[ "$(grep -c '^\.B AMMALLOC_' "$P/$mandir/man3/ammalloc.3")" -eq "$("$build/tools/ammalloc-options" list | wc -l)" ] || fail "ammalloc(3): option count"
if command -v man >/dev/null; then
  man -l "$P/$mandir/man3/ammalloc.3" 2>&1 | grep -q AMMALLOC_VERBOSE || fail "man -l cannot render ammalloc(3)"
fi
out=$("$P/$bindir/ammalloc-run" --version) || fail "installed ammalloc-run --version"
[[ "$out" == "ammalloc-run: ammalloc $version ($L/libammalloc.so)" ]] || fail "installed ammalloc-run --version: '$out'"

export LD_LIBRARY_PATH=$L   # a --destdir install is not on the loader's path
# CMake consumer.
cmake -S "$root/test/install/cmake" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 \
  || { cat "$tmp/cmake.log"; fail "cmake configure (find_package(ammalloc))"; }
grep -q "ammalloc $version from $L/cmake/ammalloc" "$tmp/cmake.log" || { cat "$tmp/cmake.log"; fail "found the wrong ammalloc"; }
cmake --build "$tmp/cm" -j2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "cmake build"; }
for p in use_ammalloc use_core use_core_static use_cxx; do
  out=$("$tmp/cm/$p") || fail "$p failed: $out"
  echo "$out"
  grep -q "$version.* ok$" <<<"$out" || fail "$p: '$out'"
done
# Static: no libammalloc_core.so in the program's needs.
readelf -d "$tmp/cm/use_core_static" | grep -q 'libammalloc' && fail "use_core_static links a shared ammalloc"
readelf -d "$tmp/cm/use_ammalloc" | grep -q 'NEEDED.*libammalloc.so.0' || fail "use_ammalloc does not need libammalloc.so.0"

# pkg-config consumer (prefix redefined: the .pc files sit in the destdir; an
# install at its real prefix needs only PKG_CONFIG_PATH, or nothing for /usr).
export PKG_CONFIG_PATH=$L/pkgconfig
flags=$(pkg-config --define-variable=prefix="$P" --cflags --libs ammalloc) || fail "pkg-config ammalloc"
cc -O2 "$root/test/install/pkgconfig_app.c" $flags -o "$tmp/app" || fail "cc with pkg-config flags: $flags"
err=$(AMMALLOC_VERBOSE=1 "$tmp/app" 2>&1 >"$tmp/out") || fail "pkg-config app failed"
[ "$(cat "$tmp/out")" = "pkgconfig_app $version" ] || fail "app printed '$(cat "$tmp/out")'"
grep -q "^ammalloc $version: pid " <<<"$err" || fail "no ammalloc banner from the linked program: $err"
sflags=$(pkg-config --define-variable=prefix="$P" --static --libs ammalloc_core) || fail "pkg-config --static ammalloc_core"
grep -q -- '-lunwind' <<<"$sflags" || fail "ammalloc_core --static misses -lunwind: $sflags"
echo "install: PASS"

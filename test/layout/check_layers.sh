#!/usr/bin/env bash
# Checks rule 7 of the architecture (docs/ARCHITECTURE.md, "Layers"): lib/ is
# a stack of folders, and a file includes only from its own folder and the
# folders below it. An include that runs upward fails, naming file, line and
# both layers. The public headers (lib/include/ammalloc/) include no internal
# header; everything may include them. interpose/ sits on top of front/.
# Usage: check_layers.sh SOURCE_ROOT
set -u
root=$1
cd "$root" || exit 2
# Bottom first. os/ is lowest: log and spinlock in base/ write and yield through it.
layers=(os base core heap policy observe front cxx)
rank() {
  local i
  for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done
  echo -1
}
fail=0 edges=0
while IFS= read -r f; do
  case $f in
    lib/include/*) own=include ;;
    interpose/*) own=interpose ;;
    lib/*/*) own=${f#lib/}; own=${own%%/*} ;;
    *) echo "FAIL: $f is not inside a layer folder"; fail=1; continue ;;
  esac
  if [ "$own" != include ] && [ "$own" != interpose ] && [ "$(rank "$own")" -lt 0 ]; then
    echo "FAIL: $f: lib/$own/ is not a known layer (${layers[*]})"; fail=1; continue
  fi
  while IFS=: read -r line inc; do
    edges=$((edges + 1))
    dep=${inc%%/*}
    if [ "$dep" = "$inc" ]; then  # a bare name: the including file's own folder
      [ -f "$(dirname "$f")/$inc" ] && continue
      echo "FAIL: $f:$line includes \"$inc\", which is not in its own folder"; fail=1; continue
    fi
    [ "$dep" = ammalloc ] && continue  # public API
    if [ "$own" = include ]; then
      echo "FAIL: $f:$line: a public header includes internal \"$inc\""; fail=1; continue
    fi
    r=$(rank "$dep")
    if [ "$r" -lt 0 ]; then
      echo "FAIL: $f:$line includes \"$inc\" from outside the layers"; fail=1; continue
    fi
    mine=$(rank "$own"); [ "$own" = interpose ] && mine=${#layers[@]}
    if [ "$r" -gt "$mine" ]; then
      echo "FAIL: $f:$line: upward include of \"$inc\" ($own/ may include only ${layers[*]:0:$((mine + 1))})"
      fail=1
    fi
  done < <(grep -nE '^\s*#\s*include\s+"' "$f" | sed -E 's/^([0-9]+):\s*#\s*include\s+"([^"]+)".*/\1:\2/')
done < <(find lib interpose -type f \( -name '*.h' -o -name '*.cc' -o -name '*.c' \) | sort)
[ $fail -eq 0 ] && echo "ok: $edges includes, none upward"
exit $fail

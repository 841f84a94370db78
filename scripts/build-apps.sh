#!/usr/bin/env bash
# Builds the native parts with gcc (run by `npm run build`, hence by `npm ci`):
#   ibas/apps/*.c           example apps (ibp_test_echo.so, ibp_test_file.so, …)  → build/apps/
#   test/fixtures/apps/*.c  test apps for the resilience tests (slow, crash, …)   → build/apps/
#   lib/native/*.c          helper libraries loaded through koffi                  → build/native/lib<name>.so
#   ibas/apps/*.mts         TypeScript example apps, compiled by tsc to dist/      → build/apps/<name>.mjs
#   test/fixtures/apps/*.mjs  JavaScript test apps (throw, loop, allocate, …)      → build/apps/<name>.mjs
# Every app includes lib/native/ibp_app.h. Rebuilds only what is older than its source or than a
# header it may include (lib/native/*.h, *.h beside the source).
#
# A source may ask to be built several times with different flags by a line
#   // ibp-build-variants: _v1:-DVERSION=1 _v2:-DVERSION=2
# (suffix:flags, flags separated by commas): test/fixtures/apps/ibp_test_ver.c then gives
# build/apps/ibp_test_ver_v1.so and build/apps/ibp_test_ver_v2.so (and no ibp_test_ver.so).
#
# Apps and helpers keep their symbols and debug info (-g, default visibility, frame pointers) so a
# crash backtrace names the function (lib/native/ibp_crash.c).
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -g -fPIC -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter"}
mkdir -p build/apps build/native
shopt -s nullglob

built=0
build() { # src out [extra flags…]
  local src=$1 out=$2
  shift 2
  local stale=0 h
  [[ -f $out && ! $src -nt $out && ! scripts/build-apps.sh -nt $out ]] || stale=1
  for h in lib/native/*.h "$(dirname "$src")"/*.h; do [[ $h -nt $out ]] && stale=1; done
  if ((stale)); then
    $CC $CFLAGS "$@" -shared -Ilib/native -o "$out.tmp" "$src" -ldl
    mv -f "$out.tmp" "$out"
    built=$((built + 1))
  fi
}

for src in ibas/apps/*.c test/fixtures/apps/*.c; do
  base=build/apps/$(basename "${src%.c}")
  variants=$(sed -n 's,^// ibp-build-variants:,,p' "$src" | head -n 1)
  if [[ -n $variants ]]; then
    for v in $variants; do
      IFS=',' read -r -a flags <<<"${v#*:}"
      build "$src" "$base${v%%:*}.so" "${flags[@]}"
    done
  else
    build "$src" "$base.so"
  fi
done
for src in lib/native/*.c; do
  build "$src" "build/native/lib$(basename "${src%.c}").so"
done
# JS apps: copied (tsc compiled the .mts ones already; without dist/ they are skipped)
copy() { # src out
  if [[ ! -f $2 || $1 -nt $2 ]]; then
    cp -f "$1" "$2.tmp"
    mv -f "$2.tmp" "$2"
    built=$((built + 1))
  fi
}
for src in ibas/apps/*.mts; do
  js=dist/ibas/apps/$(basename "${src%.mts}").mjs
  [[ -f $js ]] && copy "$js" "build/apps/$(basename "$js")"
done
for src in test/fixtures/apps/*.mjs; do
  copy "$src" "build/apps/$(basename "$src")"
done
echo "build-apps: $built built, output in build/apps/ and build/native/"

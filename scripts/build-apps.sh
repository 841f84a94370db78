#!/usr/bin/env bash
# Builds the native parts with gcc (run by `npm run build`, hence by `npm ci`):
#   ibas/apps/*.c           example apps (ibp_test_echo.so, ibp_test_file.so, …)  → build/apps/
#   test/fixtures/apps/*.c  test apps for the resilience tests (slow, crash, …)   → build/apps/
#   lib/native/*.c          helper libraries loaded through koffi                  → build/native/
# Every app includes lib/native/ibp_app.h. Rebuilds only what is older than its source.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -g -fPIC -Wall -Wextra -Werror -Wno-unused-parameter"}
mkdir -p build/apps build/native
build() { # src out
  local src=$1 out=$2
  if [[ ! -f $out || $src -nt $out || lib/native/ibp_app.h -nt $out ]]; then
    $CC $CFLAGS -shared -Ilib/native -o "$out.tmp" "$src" && mv -f "$out.tmp" "$out"
  fi
}
shopt -s nullglob
for src in ibas/apps/*.c test/fixtures/apps/*.c; do
  build "$src" "build/apps/$(basename "${src%.c}").so"
done
for src in lib/native/*.c; do
  build "$src" "build/native/lib$(basename "${src%.c}").so"
done

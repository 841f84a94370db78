#!/usr/bin/env bash
# pack.sh: build the release tarball of this project (IBP's ibp_pack_bin.sh).
#   USAGE : pack.sh [ -o (output folder, default .) ] [ --with-node-modules ]
# Writes ibp-ts-<version>-bin.tar.gz holding one folder ibp-ts-<version>-bin/ with what a host
# runs: package.json, package-lock.json, README.md, bin/ (the executables), dist/ (built code),
# build/ (native helpers and example apps, when built), scripts/*.sh, etc/ (sample configs),
# docs/, lib/native/*.h and *.c and ibas/apps/*.c, *.mts (to build apps against the ABI), scripts/prepare.mjs
# (the npm install/prepare hooks: `npm ci --omit=dev` uses the shipped dist/ and builds the native parts). With
# --with-node-modules the installed node_modules/ goes in too (same OS and CPU only); without,
# run `npm ci --omit=dev` in the unpacked folder. Run `npm run build` first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  echo "USAGE : pack.sh [ -o (output folder) ] [ --with-node-modules ]" >&2
  exit 2
}

out_dir="."
with_modules=0
while (($# > 0)); do
  case "$1" in
    -o)
      (($# >= 2)) || usage
      out_dir="$2"
      shift 2
      ;;
    --with-node-modules)
      with_modules=1
      shift
      ;;
    *)
      echo "pack.sh: unknown argument \"$1\"" >&2
      usage
      ;;
  esac
done
[[ -d "${out_dir}" ]] || { echo "pack.sh: output folder ${out_dir} does not exist" >&2; exit 2; }
[[ -f "${ROOT}/dist/bin/ibcmd.js" ]] || { echo "pack.sh: ${ROOT}/dist is not built: run \`npm run build\` first" >&2; exit 1; }

version="$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "${ROOT}/package.json" | head -n 1)"
[[ -n "${version}" ]] || { echo "pack.sh: no version in ${ROOT}/package.json" >&2; exit 1; }
name="ibp-ts-${version}-bin"
out="$(cd "${out_dir}" && pwd)/${name}.tar.gz"

cd "${ROOT}"
shopt -s nullglob
files=(package.json README.md dist etc docs scripts/*.sh scripts/prepare.mjs lib/native/*.h lib/native/*.c ibas/apps/*.c ibas/apps/*.mts)
[[ -f package-lock.json ]] && files+=(package-lock.json)
[[ -d build ]] && files+=(build)
for f in bin/*; do
  [[ "${f}" == *.ts ]] || files+=("${f}")
done
((with_modules)) && files+=(node_modules)

tar -czf "${out}.tmp" --transform "s,^,${name}/," --exclude='*.tmp' --exclude='*.tsbuildinfo' "${files[@]}"
mv -f "${out}.tmp" "${out}"
echo "pack ok , ${out} size[$(stat -c %s "${out}")]"

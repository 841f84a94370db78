#!/usr/bin/env bash
# ibp_unpack.sh: install a release on this host (IBP's ibp_unpack.sh), beside the running one.
#   USAGE : ibp_unpack.sh (tarball) [ (sha256) ]   check, unpack into $IBP_HOME/releases/(id)/,
#                                                   then switch $IBP_HOME/current to it
#           ibp_unpack.sh --rollback                switch current back to the previous release
#           ibp_unpack.sh --list                    releases, current and previous
# (id) is the tarball's name without .tar.gz (letters, digits, . _ -). The sha256 is the argument
# or the first word of (tarball).sha256; a mismatch refuses the release. Every entry must sit
# under the tarball's one top folder: no absolute path, no "..", no link leading out of it.
# Switching is one rename(2) of a new symlink over `current`; `previous` names the release it
# replaced, so --rollback is one rename too. Running servers keep the code they started with;
# the next restart_graceful runs the new release. Exit 0 ok, 1 refused or failed, 2 usage.
set -euo pipefail
IBP_HOME="${IBP_HOME:-$HOME}"
REL="${IBP_HOME}/releases"

usage() {
  sed -n '3,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
fail() {
  echo "ibp_unpack.sh: $*" >&2
  exit 1
}

switch_to() {
  local target="$1" old=""
  [[ -L "${IBP_HOME}/current" ]] && old="$(readlink "${IBP_HOME}/current")"
  ln -sfn "${target}" "${IBP_HOME}/.current.tmp"
  mv -Tf "${IBP_HOME}/.current.tmp" "${IBP_HOME}/current"
  if [[ -n "${old}" && "${old}" != "${target}" ]]; then
    ln -sfn "${old}" "${IBP_HOME}/.previous.tmp"
    mv -Tf "${IBP_HOME}/.previous.tmp" "${IBP_HOME}/previous"
  fi
}

(($# >= 1)) || usage
case "$1" in
  --rollback)
    [[ -L "${IBP_HOME}/previous" ]] || fail "no previous release to roll back to (${IBP_HOME}/previous)"
    prev="$(readlink "${IBP_HOME}/previous")"
    [[ -d "${IBP_HOME}/${prev}" || -d "${prev}" ]] || fail "the previous release ${prev} is gone"
    switch_to "${prev}"
    echo "ibp_unpack rollback ok , current[$(readlink "${IBP_HOME}/current")] previous[$(readlink "${IBP_HOME}/previous" 2>/dev/null || echo -)]"
    exit 0
    ;;
  --list)
    echo "current[$(readlink "${IBP_HOME}/current" 2>/dev/null || echo -)] previous[$(readlink "${IBP_HOME}/previous" 2>/dev/null || echo -)]"
    ls -1 "${REL}" 2>/dev/null | grep -v '^incoming$' || true
    exit 0
    ;;
  -*) usage ;;
esac

tarball="$1"
[[ -f "${tarball}" ]] || fail "no such file ${tarball}"
base="$(basename "${tarball}")"
[[ "${base}" =~ ^([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.tar\.gz$ ]] || fail "release file name ${base} must be (id).tar.gz, id of letters, digits, . _ -"
id="${BASH_REMATCH[1]}"
want="${2:-}"
if [[ -z "${want}" && -f "${tarball}.sha256" ]]; then want="$(cut -d' ' -f1 "${tarball}.sha256")"; fi
[[ "${want}" =~ ^[0-9a-f]{64}$ ]] || fail "no sha256 for ${base}: give it as the second argument or in ${base}.sha256"
have="$(sha256sum "${tarball}" | cut -d' ' -f1)"
[[ "${have}" == "${want}" ]] || fail "checksum mismatch for ${base}: sha256 ${have}, expected ${want}: release refused"

# one top folder, nothing outside it, no link out of it
top=""
while IFS= read -r entry; do
  [[ "${entry}" == /* || "${entry}" =~ (^|/)\.\.(/|$) ]] && fail "${base}: entry ${entry} leaves the release folder"
  first="${entry%%/*}"
  [[ -z "${top}" ]] && top="${first}"
  [[ "${first}" == "${top}" ]] || fail "${base}: more than one top folder (${top}, ${first})"
done < <(tar -tzf "${tarball}")
# links: resolved from where they sit, they must stay inside the top folder
while IFS= read -r line; do
  link="${line%% -> *}"
  target="${line##* -> }"
  [[ "${target}" == /* ]] && fail "${base}: link ${link} -> ${target} is absolute"
  resolved="$(realpath -m "/__release__/$(dirname "${link}")/${target}")"
  [[ "${resolved}" == "/__release__/${top}/"* ]] || fail "${base}: link ${link} -> ${target} leads out of the release"
done < <(tar -tvzf "${tarball}" | awk '$1 ~ /^l/' | sed -E 's/^([^ ]+ +){5}//')
# hard links name another member of the archive: the top-folder check above covers them

mkdir -p "${REL}"
dest="${REL}/${id}"
if [[ ! -d "${dest}" ]]; then
  tmp="$(mktemp -d "${REL}/.unpack-XXXXXX")"
  trap 'rm -rf "${tmp}"' EXIT
  tar -xzf "${tarball}" -C "${tmp}" --no-same-owner --strip-components=1
  mv -T "${tmp}" "${dest}"
  trap - EXIT
fi
switch_to "releases/${id}"
echo "ibp_unpack ok , release[${id}] sha256[${have}] current[$(readlink "${IBP_HOME}/current")] previous[$(readlink "${IBP_HOME}/previous" 2>/dev/null || echo -)]"

#!/usr/bin/env bash
# ibp_release.sh: build a release and roll it out to the cluster's hosts (IBP's ibp_pack_bin.sh +
# ibp_distribute.sh + ibp_unpack.sh in one tool).
#   USAGE : ibp_release.sh build [ -o (folder) ] [ --with-node-modules ]
#           ibp_release.sh push [ (node) | ALL ] (tarball)
#           ibp_release.sh rollback [ (node) | ALL ]
#           ibp_release.sh list [ (node) | ALL ]
# build   pack.sh, then names the tarball ibp-ts-(version)-(UTC stamp)-(commit).tar.gz and writes
#         its .sha256 beside it; prints the tarball's path.
# push    copies the tarball to every selected host of etc/ibp_cluster.conf (the host's transport:
#         ssh → $IBP_HOME/releases/incoming/, ibcmd → the agent's sandbox), where ibp_unpack.sh
#         checks its sha256, unpacks it beside the running release and switches `current`
#         (hosts in parallel, IBP_CLUSTER_PARALLEL at a time). Nothing restarts: the next
#         `ibas_cluster.sh ALL restart_graceful` runs it.
# rollback switches every selected host's `current` back to its previous release.
# Over ibcmd the agents must allow `ibp_unpack.sh *` (white list) and have a release's scripts/
# on their exec.path. Exit: 0 all hosts ok, 1 any failed, 2 usage or a bad cluster file.
set -euo pipefail
TOOL=ibp_release
SCRIPT_NAME=ibp_release.sh
VERBS="push rollback list"
# shellcheck source=cluster-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-control.sh"

release_usage() {
  sed -n '4,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

release_build() {
  local out="." mods=()
  while (($# > 0)); do
    case "$1" in
      -o) (($# >= 2)) || release_usage; out="$2"; shift 2 ;;
      --with-node-modules) mods=(--with-node-modules); shift ;;
      *) echo "ibp_release.sh: unknown argument \"$1\"" >&2; release_usage ;;
    esac
  done
  local packed version stamp commit name
  packed="$(bash "${IBP_ROOT}/scripts/pack.sh" -o "${out}" "${mods[@]}" | sed -n 's/^pack ok , \(.*\) size\[.*$/\1/p')"
  [[ -f "${packed}" ]] || { echo "ibp_release.sh: pack.sh made no tarball" >&2; exit 1; }
  version="$(basename "${packed}" -bin.tar.gz)"
  stamp="$(date -u +%Y%m%d%H%M%S)"
  commit="$(git -C "${IBP_ROOT}" rev-parse --short HEAD 2>/dev/null || echo nogit)"
  name="$(dirname "${packed}")/${version}-${stamp}-${commit}.tar.gz"
  mv -f "${packed}" "${name}"
  (cd "$(dirname "${name}")" && sha256sum "$(basename "${name}")" >"$(basename "${name}").sha256")
  echo "${name}"
}

# ACTION_FN for push: send the tarball, then unpack it there.
push_one() {
  local node="$1" ip="$2" user="$3" tr="$4" port="$5" cred="$6" where rc=0
  where="$(cluster_put "${ip}" "${user}" "${tr}" "${port}" "${cred}" "${RELEASE_FILE}" "${RELEASE_NAME}")" || return $?
  where="$(printf '%s\n' "${where}" | tail -n 1)"
  if [[ "${tr}" == "ssh" ]]; then
    # the release's own unpacker (the host may have none yet)
    cluster_exec "${ip}" "${user}" "${tr}" "${port}" "${cred}" \
      "tar -xzOf '${where}' '${RELEASE_TOP}/scripts/ibp_unpack.sh' | bash -s -- '${where}' '${RELEASE_SHA}'" || rc=$?
  else
    cluster_exec "${ip}" "${user}" "${tr}" "${port}" "${cred}" "ibp_unpack.sh ${where} ${RELEASE_SHA}" || rc=$?
  fi
  return "${rc}"
}

(($# >= 1)) || release_usage
verb="$1"
shift
case "${verb}" in
  build)
    release_build "$@"
    ;;
  push)
    (($# == 2)) || release_usage
    RELEASE_FILE="$2"
    [[ -f "${RELEASE_FILE}" ]] || { echo "ibp_release.sh: no such release ${RELEASE_FILE}" >&2; exit 2; }
    RELEASE_NAME="$(basename "${RELEASE_FILE}")"
    [[ "${RELEASE_NAME}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.tar\.gz$ ]] || { echo "ibp_release.sh: release file name ${RELEASE_NAME} must be (id).tar.gz" >&2; exit 2; }
    RELEASE_SHA="$(sha256sum "${RELEASE_FILE}" | cut -d' ' -f1)"
    if [[ -f "${RELEASE_FILE}.sha256" && "$(cut -d' ' -f1 "${RELEASE_FILE}.sha256")" != "${RELEASE_SHA}" ]]; then
      echo "ibp_release.sh: ${RELEASE_NAME} does not match its .sha256: rebuild it" >&2
      exit 1
    fi
    RELEASE_TOP="$(tar -tzf "${RELEASE_FILE}" | awk -F/ 'NR == 1 { print $1 }')"
    export RELEASE_FILE RELEASE_NAME RELEASE_SHA RELEASE_TOP
    hosts="$(cluster_hosts "$1")" || exit 2
    failed=0
    ACTION_FN=push_one cluster_parallel "${hosts}" "" || failed=$?
    ((failed == 0)) || exit 1
    ;;
  rollback | list)
    (($# == 1)) || release_usage
    hosts="$(cluster_hosts "$1")" || exit 2
    failed=0
    flag="--rollback"
    [[ "${verb}" == "list" ]] && flag="--list"
    cmd="ibp_unpack.sh ${flag}"
    cluster_parallel "${hosts}" "${cmd}" || failed=$?
    ((failed == 0)) || exit 1
    ;;
  *)
    release_usage
    ;;
esac

# cluster-control.sh: what ibma_cluster.sh and ibas_cluster.sh share (sourced, not run).
#
# The caller sets TOOL (ibma|ibas) and VERBS, then calls `cluster_main "$@"`:
#
#   <tool>_cluster.sh [ (node) | ALL ] [ <verb> | cmd (cmd args ...) ]
#
# The cluster is etc/ibp_cluster.conf of IBP_HOME (or the file IBP_CLUSTER_CONF names), one host
# a line, IBP's three columns plus ours:
#
#   (node) (ip) (user) [ (ibcmd port, default 26001) [ (credential file) ] ]
#
# `#` starts a comment. For every line of the selected node (or every line for ALL), in file
# order, one at a time, the host's ibcmd agent runs `<tool>.sh <verb>` (or the given command)
# in its own home, and must run as (user). One result line is printed per host:
#
#   (node) (ip):(port) (user) : OK|FAILED(rc) : (last line of the output)
#
# IBP_CLUSTER_VERBOSE=1 prints the whole output under each line. The exit status is 0 when every
# host succeeded, 1 when any failed, 2 for bad usage or a bad cluster file.

IBP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IBP_HOME="${IBP_HOME:-$HOME}"
export IBP_HOME
CLUSTER_CONF="${IBP_CLUSTER_CONF:-${IBP_HOME}/etc/ibp_cluster.conf}"
DEFAULT_IBCMD_PORT=26001

cluster_usage() {
  echo "USAGE : ${TOOL}_cluster.sh [ (node) | ALL ] [ ${VERBS// / | } | cmd (cmd) ]" >&2
  echo "        (cluster: ${CLUSTER_CONF}; lines: node ip user [ibcmd_port [credential_file]])" >&2
  exit 2
}

cluster_fail() {
  echo "${TOOL}_cluster.sh: $*" >&2
  exit 2
}

valid_ipv4() {
  local octet
  [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  for octet in ${1//./ }; do
    ((10#${octet} <= 255)) || return 1
  done
}

# Print the hosts of the selected node as "node ip user port credential" lines, checking each.
cluster_hosts() {
  local want="$1" n=0 lineno=0 node ip user port cred extra line
  [[ -r "${CLUSTER_CONF}" ]] || cluster_fail "cannot read ${CLUSTER_CONF}: write it (lines: node ip user [ibcmd_port [credential_file]]) or set IBP_CLUSTER_CONF"
  while IFS= read -r line || [[ -n "${line}" ]]; do
    lineno=$((lineno + 1))
    line="${line%%#*}"
    read -r node ip user port cred extra <<<"${line}" || true
    [[ -z "${node:-}" ]] && continue
    [[ -z "${extra:-}" ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: too many columns (node ip user [ibcmd_port [credential_file]])"
    [[ "${node}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$ ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: node \"${node}\" is not a node name"
    valid_ipv4 "${ip:-}" || cluster_fail "${CLUSTER_CONF}:${lineno}: \"${ip:-}\" is not an IPv4 address"
    [[ "${user:-}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: user \"${user:-}\" is not a user name"
    port="${port:-${DEFAULT_IBCMD_PORT}}"
    [[ "${port}" =~ ^[0-9]{1,5}$ ]] && ((10#${port} >= 1 && 10#${port} <= 65535)) || cluster_fail "${CLUSTER_CONF}:${lineno}: ibcmd port \"${port}\" is not 1..65535"
    cred="${cred:-keys/ibcmd.credential}"
    [[ "${cred}" == /* ]] || cred="${IBP_HOME}/${cred}"
    if [[ "${want}" == "ALL" || "${want}" == "${node}" ]]; then
      echo "${node} ${ip} ${user} ${port} ${cred}"
      n=$((n + 1))
    fi
  done <"${CLUSTER_CONF}"
  ((n > 0)) || cluster_fail "node \"${want}\" is not in ${CLUSTER_CONF}"
}

# Run one command line on one host through its ibcmd agent; print the result line.
cluster_run_one() {
  local node="$1" ip="$2" user="$3" port="$4" cred="$5" cmdline="$6" out rc=0 last
  out="$("${IBP_ROOT}/bin/ibcmd" --ip "${ip}" --port "${port}" --credential-file "${cred}" \
    -a execmd --cmd "${cmdline}" --user "${user}" 2>&1)" || rc=$?
  last="$(printf '%s\n' "${out}" | sed -e 's/[[:space:]]*$//' -e '/^$/d' | tail -n 1 | cut -c1-200)"
  if ((rc == 0)); then
    printf '%s %s:%s %s : OK : %s\n' "${node}" "${ip}" "${port}" "${user}" "${last}"
  else
    printf '%s %s:%s %s : FAILED(%s) : %s\n' "${node}" "${ip}" "${port}" "${user}" "${rc}" "${last}"
  fi
  if [[ "${IBP_CLUSTER_VERBOSE:-0}" == "1" && -n "${out}" ]]; then
    printf '%s\n' "${out}" | sed 's/^/    /'
  fi
  return "${rc}"
}

cluster_main() {
  (($# >= 2)) || cluster_usage
  local want="$1" verb="$2" v known=0 cmdline hosts failed=0 node ip user port cred
  shift 2
  if [[ "${verb}" == "cmd" ]]; then
    (($# >= 1)) || cluster_fail "cmd needs a command, e.g. ${TOOL}_cluster.sh ALL cmd uptime"
    cmdline="$*"
  else
    (($# == 0)) || cluster_fail "\"${verb}\" takes no arguments"
    for v in ${VERBS}; do
      [[ "${v}" == "${verb}" ]] && known=1
    done
    ((known == 1)) || { echo "${TOOL}_cluster.sh: unknown verb \"${verb}\"" >&2; cluster_usage; }
    cmdline="${TOOL}.sh ${verb}"
  fi
  hosts="$(cluster_hosts "${want}")" || exit 2
  while read -r node ip user port cred; do
    cluster_run_one "${node}" "${ip}" "${user}" "${port}" "${cred}" "${cmdline}" </dev/null || failed=$((failed + 1))
  done <<<"${hosts}"
  ((failed == 0)) || return 1
}

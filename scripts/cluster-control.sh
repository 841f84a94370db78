# cluster-control.sh: what ibma_cluster.sh and ibas_cluster.sh share (sourced, not run).
#
# The caller sets TOOL (ibma|ibas), VERBS and ROLLING (the verbs that restart a host), then calls
# `cluster_main "$@"`:
#
#   <tool>_cluster.sh [ (node) | ALL ] [ <verb> | cmd (cmd args ...) ]
#
# The cluster is etc/ibp_cluster.conf of IBP_HOME (or the file IBP_CLUSTER_CONF names), one host
# a line, IBP's three columns plus ours:
#
#   (node) (ip) (user) [ (transport) [ (credential file) ] ]
#
#   transport   ibcmd[:PORT] (the controlled agent; default port 26001; a bare PORT means ibcmd)
#               ssh[:PORT]   (OpenSSH, IBP's way: key only, BatchMode, strict host keys from
#                             IBP_SSH_KNOWN_HOSTS, default etc/ssh_known_hosts of IBP_HOME)
#   credential  ibcmd: the credential file (default keys/ibcmd.credential)
#               ssh: the private key (default keys/ssh_id_ed25519)
#   (relative paths are relative to IBP_HOME)
#
# `#` starts a comment. Verbs run on the selected hosts (one node, or every line for ALL):
#   - a rolling verb (ROLLING: restart, restart_graceful) first runs `check` on every selected
#     host; when any fails, nothing is touched and the exit is 1. Then one host at a time in file
#     order: `check`, then the verb; the roll stops at the first host that fails (the rest are
#     reported SKIPPED), so never more than one host of a node is restarting;
#   - any other verb and `cmd` run on up to IBP_CLUSTER_PARALLEL hosts at once (default 8), with a
#     progress line on stderr; results are printed in file order.
# One result line per host:
#
#   (node) (ip):(port) (user) (transport) : OK|FAILED(rc)|SKIPPED : (summary: see cluster_summary)
#
# rc is the remote command's exit code, or 10 (refused by the agent), 11 (host unreachable).
# IBP_CLUSTER_VERBOSE=1 prints the whole output under each line. The exit status is 0 when every
# host succeeded, 1 when any failed, 2 for bad usage or a bad cluster file.

IBP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IBP_HOME="${IBP_HOME:-$HOME}"
export IBP_HOME
CLUSTER_CONF="${IBP_CLUSTER_CONF:-${IBP_HOME}/etc/ibp_cluster.conf}"
DEFAULT_IBCMD_PORT=26001
SCRIPT_NAME="${SCRIPT_NAME:-${TOOL}_cluster.sh}"

cluster_usage() {
  echo "USAGE : ${SCRIPT_NAME} [ (node) | ALL ] [ ${VERBS// / | } | cmd (cmd) ]" >&2
  echo "        (cluster: ${CLUSTER_CONF}; lines: node ip user [ibcmd[:port]|ssh[:port] [credential_file]])" >&2
  exit 2
}

cluster_fail() {
  echo "${SCRIPT_NAME}: $*" >&2
  exit 2
}

valid_ipv4() {
  local octet
  [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  for octet in ${1//./ }; do
    ((10#${octet} <= 255)) || return 1
  done
}

valid_port() {
  [[ "$1" =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

# Print the hosts of the selected node as "node ip user transport port credential" lines.
cluster_hosts() {
  local want="$1" n=0 lineno=0 node ip user tr col port cred extra line
  [[ -r "${CLUSTER_CONF}" ]] || cluster_fail "cannot read ${CLUSTER_CONF}: write it (lines: node ip user [ibcmd[:port]|ssh[:port] [credential_file]]) or set IBP_CLUSTER_CONF"
  while IFS= read -r line || [[ -n "${line}" ]]; do
    lineno=$((lineno + 1))
    line="${line%%#*}"
    read -r node ip user tr cred extra <<<"${line}" || true
    [[ -z "${node:-}" ]] && continue
    [[ -z "${extra:-}" ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: too many columns (node ip user [ibcmd[:port]|ssh[:port] [credential_file]])"
    [[ "${node}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$ ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: node \"${node}\" is not a node name"
    valid_ipv4 "${ip:-}" || cluster_fail "${CLUSTER_CONF}:${lineno}: \"${ip:-}\" is not an IPv4 address"
    [[ "${user:-}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || cluster_fail "${CLUSTER_CONF}:${lineno}: user \"${user:-}\" is not a user name"
    tr="${tr:-ibcmd}"
    col="${tr}"
    case "${tr}" in
      ibcmd) port="${DEFAULT_IBCMD_PORT}" ;;
      ssh) port=22 ;;
      ibcmd:* | ssh:*) port="${tr#*:}"; tr="${tr%%:*}" ;;
      *) port="${tr}"; tr=ibcmd ;;
    esac
    valid_port "${port}" || cluster_fail "${CLUSTER_CONF}:${lineno}: transport \"${col}\" must be ibcmd[:port], ssh[:port] or an ibcmd port 1..65535 (port \"${port}\")"
    if [[ "${tr}" == "ssh" ]]; then cred="${cred:-keys/ssh_id_ed25519}"; else cred="${cred:-keys/ibcmd.credential}"; fi
    [[ "${cred}" == /* ]] || cred="${IBP_HOME}/${cred}"
    if [[ "${want}" == "ALL" || "${want}" == "${node}" ]]; then
      echo "${node} ${ip} ${user} ${tr} ${port} ${cred}"
      n=$((n + 1))
    fi
  done <"${CLUSTER_CONF}"
  ((n > 0)) || cluster_fail "node \"${want}\" is not in ${CLUSTER_CONF}"
}

# Run one command line on one host; output on stdout, the command's exit code as ours.
cluster_exec() {
  local ip="$1" user="$2" tr="$3" port="$4" cred="$5" cmdline="$6" rc=0
  if [[ "${tr}" == "ssh" ]]; then
    # the remote shell runs the tool scripts of the host's current release (or its PATH's)
    ssh -n -o BatchMode=yes -o StrictHostKeyChecking=yes -o PasswordAuthentication=no \
      -o "UserKnownHostsFile=${IBP_SSH_KNOWN_HOSTS:-${IBP_HOME}/etc/ssh_known_hosts}" \
      -o ConnectTimeout="${IBP_SSH_CONNECT_TIMEOUT:-10}" -o LogLevel=ERROR \
      -i "${cred}" -p "${port}" -l "${user}" "${ip}" -- \
      'IBP_HOME="${IBP_HOME:-$HOME}"; export IBP_HOME; PATH="${IBP_HOME}/current/scripts:${PATH}"; cd "${IBP_HOME}" && '"${cmdline}" 2>&1 || rc=$?
    # ssh's own failures (no route, refused key, host key mismatch) are 255: "unreachable"
    ((rc == 255)) && rc=11
    return "${rc}"
  fi
  "${IBP_ROOT}/bin/ibcmd" --ip "${ip}" --port "${port}" --credential-file "${cred}" \
    -a execmd --cmd "${cmdline}" --user "${user}" 2>&1
}

# Copy a local file to a host as NAME: ssh → $IBP_HOME/releases/incoming/NAME, ibcmd → the
# agent's sandbox (putfile). Prints where it landed, as a path the host's commands can use.
cluster_put() {
  local ip="$1" user="$2" tr="$3" port="$4" cred="$5" file="$6" name="$7" rc=0
  if [[ "${tr}" == "ssh" ]]; then
    ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o PasswordAuthentication=no \
      -o "UserKnownHostsFile=${IBP_SSH_KNOWN_HOSTS:-${IBP_HOME}/etc/ssh_known_hosts}" \
      -o ConnectTimeout="${IBP_SSH_CONNECT_TIMEOUT:-10}" -o LogLevel=ERROR \
      -i "${cred}" -p "${port}" -l "${user}" "${ip}" -- \
      'IBP_HOME="${IBP_HOME:-$HOME}"; d="${IBP_HOME}/releases/incoming"; mkdir -p "$d" && cat >"$d/'"${name}"'.part" && mv -f "$d/'"${name}"'.part" "$d/'"${name}"'" && echo "$d/'"${name}"'"' \
      <"${file}" 2>&1 || rc=$?
    ((rc == 255)) && rc=11
    return "${rc}"
  fi
  "${IBP_ROOT}/bin/ibcmd" --ip "${ip}" --port "${port}" --credential-file "${cred}" -a putfile --file "${file}" --as "${name}" >/dev/null 2>&1 || return $?
  echo "${name}"
}

# The summary of a host's output for its result line. For a verb that succeeded (cmdline
# `TOOL.sh verb`, rc 0): the tool's own last line, one starting `TOOL ` or `TOOL:` (`ibas start ok
# …`, or `ibas is running …` above a status table, not the table's last row); else (a failure, `cmd`,
# ACTION_FN, or no such line) the last non-empty line. At most 200 bytes, never cut inside a UTF-8
# character.
cluster_summary() {
  local out="$1" cmdline="$2" rc="$3" lines pick=""
  lines="$(printf '%s\n' "${out}" | sed -e 's/[[:space:]]*$//' -e '/^$/d')"
  if ((rc == 0)) && [[ "${cmdline}" == "${TOOL}.sh "* ]]; then
    pick="$(printf '%s\n' "${lines}" | grep -E "^${TOOL}[ :]" | tail -n 1)" || pick=""
  fi
  [[ -n "${pick}" ]] || pick="$(printf '%s\n' "${lines}" | tail -n 1)"
  # cut bytes, then drop a lead byte left without all its continuation bytes
  printf '%s\n' "${pick}" | LC_ALL=C cut -b1-200 |
    LC_ALL=C sed -E 's/([\xC0-\xDF]|[\xE0-\xEF][\x80-\xBF]?|[\xF0-\xF7][\x80-\xBF]{0,2})$//'
}

# Run an action on one host and write its result line (and output) to stdout. The action is a
# command line (run with cluster_exec), or, with ACTION_FN set, that function called with the
# host's fields: node ip user transport port credential.
cluster_run_one() {
  local node="$1" ip="$2" user="$3" tr="$4" port="$5" cred="$6" cmdline="$7" out rc=0 last
  if [[ -n "${ACTION_FN:-}" ]]; then
    out="$("${ACTION_FN}" "${node}" "${ip}" "${user}" "${tr}" "${port}" "${cred}" </dev/null 2>&1)" || rc=$?
  else
    out="$(cluster_exec "${ip}" "${user}" "${tr}" "${port}" "${cred}" "${cmdline}" </dev/null)" || rc=$?
  fi
  last="$(cluster_summary "${out}" "${cmdline}" "${rc}")"
  if ((rc == 0)); then
    printf '%s %s:%s %s %s : OK : %s\n' "${node}" "${ip}" "${port}" "${user}" "${tr}" "${last}"
  else
    printf '%s %s:%s %s %s : FAILED(%s) : %s\n' "${node}" "${ip}" "${port}" "${user}" "${tr}" "${rc}" "${last}"
  fi
  if [[ "${IBP_CLUSTER_VERBOSE:-0}" == "1" && -n "${out}" ]]; then
    printf '%s\n' "${out}" | sed 's/^/    /'
  fi
  return "${rc}"
}

# Run a command line (or ACTION_FN) on every host, IBP_CLUSTER_PARALLEL at a time; results in
# file order. Returns the number of hosts that failed (0..255).
cluster_parallel() {
  local hosts="$1" cmdline="$2" limit="${IBP_CLUSTER_PARALLEL:-8}" tmp total i=0 done_n=0 failed=0
  [[ "${limit}" =~ ^[1-9][0-9]*$ ]] || cluster_fail "IBP_CLUSTER_PARALLEL \"${limit}\" must be a positive number"
  tmp="$(mktemp -d)"
  total="$(printf '%s\n' "${hosts}" | grep -c .)"
  while read -r node ip user tr port cred; do
    i=$((i + 1))
    (cluster_run_one "${node}" "${ip}" "${user}" "${tr}" "${port}" "${cred}" "${cmdline}" >"${tmp}/${i}.out"; echo $? >"${tmp}/${i}.rc") &
    while (($(jobs -rp | wc -l) >= limit)); do
      wait -n || true
      done_n=$(find "${tmp}" -name '*.rc' | wc -l)
      ((total > 1)) && printf '\r%s: %d/%d hosts done' "${SCRIPT_NAME}" "${done_n}" "${total}" >&2
    done
  done <<<"${hosts}"
  wait
  ((total > 1)) && printf '\r%s: %d/%d hosts done\n' "${SCRIPT_NAME}" "${total}" "${total}" >&2
  for ((i = 1; i <= total; i++)); do
    cat "${tmp}/${i}.out"
    [[ "$(cat "${tmp}/${i}.rc" 2>/dev/null || echo 1)" == "0" ]] || failed=$((failed + 1))
  done
  rm -rf "${tmp}"
  return "$((failed > 255 ? 255 : failed))"
}

# A rolling verb: pre-check every host, then host by host check + verb, stopping at a failure.
cluster_rolling() {
  local hosts="$1" verb="$2" out failed=0 stop=0
  out="$(cluster_parallel "${hosts}" "${TOOL}.sh check")" || failed=$?
  if ((failed > 0)); then
    printf '%s\n' "${out}"
    echo "${SCRIPT_NAME}: ${failed} host(s) failed the pre-check: ${verb} touched no host" >&2
    return 1
  fi
  while read -r node ip user tr port cred; do
    if ((stop == 1)); then
      printf '%s %s:%s %s %s : SKIPPED : an earlier host failed\n' "${node}" "${ip}" "${port}" "${user}" "${tr}"
      continue
    fi
    if ! out="$(cluster_run_one "${node}" "${ip}" "${user}" "${tr}" "${port}" "${cred}" "${TOOL}.sh check")"; then
      printf '%s\n' "${out}"
      stop=1
      continue
    fi
    cluster_run_one "${node}" "${ip}" "${user}" "${tr}" "${port}" "${cred}" "${TOOL}.sh ${verb}" || stop=1
  done <<<"${hosts}"
  if ((stop == 1)); then
    echo "${SCRIPT_NAME}: ${verb} stopped at the first failing host" >&2
    return 1
  fi
}

cluster_main() {
  (($# >= 2)) || cluster_usage
  local want="$1" verb="$2" v known=0 cmdline hosts failed=0
  shift 2
  if [[ "${verb}" == "cmd" ]]; then
    (($# >= 1)) || cluster_fail "cmd needs a command, e.g. ${SCRIPT_NAME} ALL cmd uptime"
    cmdline="$*"
  else
    (($# == 0)) || cluster_fail "\"${verb}\" takes no arguments"
    for v in ${VERBS}; do
      [[ "${v}" == "${verb}" ]] && known=1
    done
    ((known == 1)) || { echo "${SCRIPT_NAME}: unknown verb \"${verb}\"" >&2; cluster_usage; }
    cmdline="${TOOL}.sh ${verb}"
  fi
  hosts="$(cluster_hosts "${want}")" || exit 2
  for v in ${ROLLING:-restart restart_graceful}; do
    if [[ "${verb}" == "${v}" ]]; then
      cluster_rolling "${hosts}" "${verb}"
      return
    fi
  done
  cluster_parallel "${hosts}" "${cmdline}" || failed=$?
  ((failed == 0)) || return 1
}

# daemon-control.sh: what ibms.sh, ibma.sh, ibas.sh and ibcmd.sh share (sourced, not run).
#
# The caller sets TOOL (ibms|ibma|ibas|ibcmd) and VERBS (its usage line), then calls
# `daemon_main "$@"`. Every verb calls bin/$TOOL with `-f $TOOL.conf`, the config of the home
# IBP_HOME (default $HOME), exactly as IBP's scripts call their binaries:
#
#   status            bin/$TOOL -f $TOOL.conf -s status
#   start | stop | kill | check   bin/$TOOL -f $TOOL.conf -a <verb>
#   restart           stop (when running), then start
#   restart_graceful  the caller's graceful_restart function (ibas: SIGUSR2, see ibas.sh)
#   reload_log        SIGUSR1 to the pid in $IBP_HOME/run/$TOOL.pid
#
# A script's exit status is the tool's; a bad or missing verb prints the usage and exits 2.

IBP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IBP_HOME="${IBP_HOME:-$HOME}"
export IBP_HOME

usage() {
  echo "USAGE : ${TOOL}.sh [ ${VERBS// / | } ]" >&2
  echo "        (home: IBP_HOME=${IBP_HOME}, config: \$IBP_HOME/etc/${TOOL}.conf)" >&2
  exit 2
}

tool() {
  "${IBP_ROOT}/bin/${TOOL}" -f "${TOOL}.conf" "$@"
}

pid_file() {
  echo "${IBP_HOME}/run/${TOOL}.pid"
}

# The pid in the pid file when that process is alive (a zombie is not); fails otherwise.
running_pid() {
  local pid state
  pid="$(tr -cd '0-9' 2>/dev/null < "$(pid_file)" || true)"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/${pid}/stat" 2>/dev/null || true)"
  [[ "${state}" != "Z" && "${state}" != "X" ]] || return 1
  echo "${pid}"
}

send_signal() {
  local sig="$1" pid
  if ! pid="$(running_pid)"; then
    echo "${TOOL} is not running (pid file $(pid_file))" >&2
    return 7
  fi
  kill "-${sig}" "${pid}"
  echo "${TOOL} SIG${sig} sent , pid[${pid}]"
}

restart() {
  if running_pid >/dev/null; then
    tool -a stop
  fi
  tool -a start
}

# The default graceful restart: stop, then start (ibas.sh defines its own).
graceful_restart() {
  restart
}

# Verbs every daemon script has; returns 127 for a verb it does not know.
common_verb() {
  case "$1" in
    status) tool -s status ;;
    start | stop | kill | check) tool -a "$1" ;;
    restart) restart ;;
    restart_graceful) graceful_restart ;;
    reload_log) send_signal USR1 ;;
    *) return 127 ;;
  esac
}

# Check the verb against VERBS, then run it: the caller's tool_verb first (extra verbs), then the
# common ones.
daemon_main() {
  [[ $# -eq 1 ]] || usage
  local verb="$1" v known=0
  for v in ${VERBS}; do
    [[ "${v}" == "${verb}" ]] && known=1
  done
  [[ ${known} -eq 1 ]] || { echo "${TOOL}.sh: unknown verb \"${verb}\"" >&2; usage; }
  if declare -F tool_verb >/dev/null; then
    local rc=0
    tool_verb "${verb}" || rc=$?
    [[ ${rc} -ne 127 ]] && return "${rc}"
  fi
  common_verb "${verb}"
}

#!/usr/bin/env bash
# ibas.sh: control the transaction server of this home (IBP_HOME, default $HOME), as IBP's ibas.sh.
#   USAGE : ibas.sh [ status | start | stop | kill | restart | restart_graceful | reload_log | check
#                     | bbstat | bbdetail ]
# restart_graceful sends SIGUSR2 to the ibas manager (graceful upgrade: a new generation inherits
# the listen socket, the old one drains) and waits until the pid file names the new generation
# (IBP_GRACEFUL_TIMEOUT seconds, default 60). See docs/scripts.md.
set -euo pipefail
TOOL=ibas
VERBS="status start stop kill restart restart_graceful reload_log check bbstat bbdetail"
# shellcheck source=daemon-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-control.sh"

graceful_restart() {
  local old new deadline
  if ! old="$(running_pid)"; then
    echo "ibas is not running (pid file $(pid_file)): use start" >&2
    return 7
  fi
  kill -USR2 "${old}"
  deadline=$((SECONDS + ${IBP_GRACEFUL_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    if new="$(running_pid)" && [[ "${new}" != "${old}" ]]; then
      echo "ibas restart_graceful ok , old pid[${old}] new pid[${new}]"
      return 0
    fi
    sleep 0.2
  done
  echo "ibas restart_graceful: no new generation within ${IBP_GRACEFUL_TIMEOUT:-60} s (pid file still names ${old}); see the monitor log" >&2
  return 1
}

tool_verb() {
  case "$1" in
    bbstat | bbdetail) tool -s "$1" ;;
    *) return 127 ;;
  esac
}

daemon_main "$@"

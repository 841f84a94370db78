#!/usr/bin/env bash
# ibms.sh: control the registry of this home (IBP_HOME, default $HOME), as IBP's ibms.sh.
#   USAGE : ibms.sh [ status | start | stop | kill | restart | restart_graceful | reload_log | check
#                     | show_nodes | show_apps | show_projects | show_sessions ]
# restart_graceful is stop + start (ibms has no live upgrade). See docs/scripts.md.
set -euo pipefail
TOOL=ibms
VERBS="status start stop kill restart restart_graceful reload_log check show_nodes show_apps show_projects show_sessions"
# shellcheck source=daemon-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-control.sh"

tool_verb() {
  case "$1" in
    show_nodes | show_apps | show_projects | show_sessions) tool -s "${1#show_}" ;;
    *) return 127 ;;
  esac
}

daemon_main "$@"

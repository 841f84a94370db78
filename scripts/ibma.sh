#!/usr/bin/env bash
# ibma.sh: control the node agent of this home (IBP_HOME, default $HOME), as IBP's ibma.sh.
#   USAGE : ibma.sh [ status | start | start_cleanly | stop | stop_cleanly | kill | restart
#                     | restart_graceful | reload_log | check | this_node | nodes | apps | nodes_kv ]
# restart_graceful is stop + start (readers keep the config space meanwhile). See docs/scripts.md.
set -euo pipefail
TOOL=ibma
VERBS="status start start_cleanly stop stop_cleanly kill restart restart_graceful reload_log check this_node nodes apps nodes_kv"
# shellcheck source=daemon-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-control.sh"

tool_verb() {
  case "$1" in
    start_cleanly | stop_cleanly) tool -a "$1" ;;
    this_node | nodes | apps | nodes_kv) tool -s "$1" ;;
    *) return 127 ;;
  esac
}

daemon_main "$@"

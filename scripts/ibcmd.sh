#!/usr/bin/env bash
# ibcmd.sh: control the remote-command agent of this home (IBP_HOME, default $HOME).
#   USAGE : ibcmd.sh [ status | start | stop | kill | restart | restart_graceful | reload_log | check ]
# restart_graceful is stop + start. Do not restart an agent through itself (its stop kills the
# command that asked for it). See docs/scripts.md.
set -euo pipefail
TOOL=ibcmd
VERBS="status start stop kill restart restart_graceful reload_log check"
# shellcheck source=daemon-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-control.sh"

daemon_main "$@"

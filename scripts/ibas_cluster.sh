#!/usr/bin/env bash
# ibas_cluster.sh: run an ibas.sh verb (or a command) on every host of a node, or of the cluster,
# through each host's ibcmd agent, one host at a time (a rolling restart_graceful).
#   USAGE : ibas_cluster.sh [ (node) | ALL ] [ start | stop | kill | status | restart | restart_graceful | cmd (cmd) ]
# Hosts come from $IBP_HOME/etc/ibp_cluster.conf (lines: node ip user [ibcmd_port [credential_file]]).
# See scripts/cluster-control.sh and docs/scripts.md.
set -euo pipefail
TOOL=ibas
VERBS="start stop kill status restart restart_graceful reload_log check"
ROLLING="restart restart_graceful"
# shellcheck source=cluster-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-control.sh"

cluster_main "$@"

#!/usr/bin/env bash
# ibma_cluster.sh: run an ibma.sh verb (or a command) on every host of a node, or of the cluster,
# through each host's ibcmd agent, one host at a time.
#   USAGE : ibma_cluster.sh [ (node) | ALL ] [ start | start_cleanly | stop | stop_cleanly | kill | status | restart | restart_graceful | cmd (cmd) ]
# Hosts come from $IBP_HOME/etc/ibp_cluster.conf (lines: node ip user [ibcmd_port [credential_file]]).
# See scripts/cluster-control.sh and docs/scripts.md.
set -euo pipefail
TOOL=ibma
VERBS="start start_cleanly stop stop_cleanly kill status restart restart_graceful reload_log check"
ROLLING="restart restart_graceful"
# shellcheck source=cluster-control.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-control.sh"

cluster_main "$@"

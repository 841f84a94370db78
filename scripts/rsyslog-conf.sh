#!/usr/bin/env bash
# Render the rsyslog configs of etc/rsyslog/ (central log collection, docs/ops.md §3.1):
#
#   rsyslog-conf.sh forward HOME HOSTNAME COLLECTOR_IP COLLECTOR_PORT WORKDIR   > forward.conf
#   rsyslog-conf.sh collect DIR LISTEN_IP LISTEN_PORT WORKDIR                   > collector.conf
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)/etc/rsyslog"
esc() { printf '%s' "$1" | sed -e 's/[\/&|]/\\&/g'; }
case "${1:-}" in
  forward)
    [ $# -eq 6 ] || { echo "usage: $0 forward HOME HOSTNAME COLLECTOR_IP COLLECTOR_PORT WORKDIR" >&2; exit 2; }
    sed -e "s|@HOME@|$(esc "$2")|g" -e "s|@HOST@|$(esc "$3")|g" -e "s|@COLLECTOR_IP@|$(esc "$4")|g" \
        -e "s|@COLLECTOR_PORT@|$(esc "$5")|g" -e "s|@WORKDIR@|$(esc "$6")|g" "$here/ibp-forward.conf" ;;
  collect)
    [ $# -eq 5 ] || { echo "usage: $0 collect DIR LISTEN_IP LISTEN_PORT WORKDIR" >&2; exit 2; }
    sed -e "s|@DIR@|$(esc "$2")|g" -e "s|@LISTEN_IP@|$(esc "$3")|g" -e "s|@LISTEN_PORT@|$(esc "$4")|g" \
        -e "s|@WORKDIR@|$(esc "$5")|g" "$here/ibp-collector.conf" ;;
  *) echo "usage: $0 forward|collect …" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# netns-cluster.sh: a cluster of test "hosts" on one machine, each a network namespace with its
# own address, joined by a bridge that lives in a namespace of its own (nothing is added to the
# machine's own network: no address, no route, no forwarding in the root namespace).
#
#   USAGE : netns-cluster.sh up NAME N          create hosts h1..hN (removes a leftover NAME first)
#           netns-cluster.sh down NAME          kill every process in NAME's namespaces, delete them
#           netns-cluster.sh gc                 down every cluster whose creator process is gone
#           netns-cluster.sh list               clusters and their hosts
#           netns-cluster.sh addr NAME HOST     the address of HOST (h1, h2, ...)
#           netns-cluster.sh exec NAME HOST CMD [ARGS...]   run a command inside HOST
#           netns-cluster.sh sshd NAME HOST HOME           start an OpenSSH server inside HOST whose
#                                                          sessions get IBP_HOME=HOME (installs
#                                                          openssh-server when missing)
#           netns-cluster.sh ssh-files NAME     print "key known_hosts" of NAME's client side
#
# NAME: 1..8 of [a-z0-9]. Namespaces: ibp-NAME-sw (the switch: bridge br0) and ibp-NAME-hI.
# Host I has 198.18.0.(10+I)/24 on its eth0 (RFC 2544's benchmarking range: never routed; each
# cluster's switch is private, so clusters of different names may run side by side).
# State (creator pid, ssh keys, known_hosts, sshd configs) in /run/ibp-netns/NAME/.
# Needs root and iproute2; exits 3 with a message when either is missing.
set -euo pipefail

STATE_ROOT="${IBP_NETNS_STATE:-/run/ibp-netns}"
SUBNET=198.18.0

usage() {
  sed -n '4,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

fail() {
  echo "netns-cluster.sh: $*" >&2
  exit 1
}

need_root() {
  [[ "$(id -u)" == "0" ]] || { echo "netns-cluster.sh: needs root (network namespaces)" >&2; exit 3; }
  command -v ip >/dev/null || { echo "netns-cluster.sh: needs iproute2 (ip)" >&2; exit 3; }
}

check_name() {
  [[ "${1:-}" =~ ^[a-z0-9]{1,8}$ ]] || fail "cluster name \"${1:-}\" must be 1..8 of [a-z0-9]"
}

check_host() {
  [[ "${1:-}" =~ ^h([1-9][0-9]?)$ ]] || fail "host \"${1:-}\" must be h1..h99"
}

ns_of() { echo "ibp-$1-$2"; }

addr_of() {
  local i="${2#h}"
  echo "${SUBNET}.$((10 + i))"
}

cluster_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^ibp-$1-(sw|h[0-9]+)$" || true
}

down() {
  local name="$1" ns pid
  for ns in $(cluster_namespaces "${name}"); do
    for pid in $(ip netns pids "${ns}" 2>/dev/null); do kill -TERM "${pid}" 2>/dev/null || true; done
  done
  for _ in $(seq 1 20); do
    local left=0
    for ns in $(cluster_namespaces "${name}"); do
      [[ -n "$(ip netns pids "${ns}" 2>/dev/null)" ]] && left=1
    done
    ((left == 0)) && break
    sleep 0.1
  done
  for ns in $(cluster_namespaces "${name}"); do
    for pid in $(ip netns pids "${ns}" 2>/dev/null); do kill -KILL "${pid}" 2>/dev/null || true; done
    ip netns delete "${ns}" 2>/dev/null || true
  done
  rm -rf "${STATE_ROOT:?}/${name}"
}

up() {
  local name="$1" n="$2" i ns sw a b
  [[ "${n}" =~ ^[1-9][0-9]?$ ]] || fail "host count \"${n}\" must be 1..99"
  [[ -z "$(cluster_namespaces "${name}")" ]] || down "${name}"
  mkdir -p "${STATE_ROOT}/${name}"
  chmod 700 "${STATE_ROOT}/${name}"
  echo "${PPID}" >"${STATE_ROOT}/${name}/creator"
  sw="$(ns_of "${name}" sw)"
  ip netns add "${sw}"
  ip -n "${sw}" link set lo up
  ip -n "${sw}" link add br0 type bridge
  ip -n "${sw}" link set br0 up
  for i in $(seq 1 "${n}"); do
    ns="$(ns_of "${name}" "h${i}")"
    a="ibp${name}h${i}"
    b="ibp${name}p${i}"
    ip netns add "${ns}"
    ip -n "${ns}" link set lo up
    ip link add "${a}" type veth peer name "${b}"
    ip link set "${a}" netns "${ns}"
    ip link set "${b}" netns "${sw}"
    ip -n "${ns}" link set "${a}" name eth0
    ip -n "${ns}" addr add "$(addr_of "${name}" "h${i}")/24" dev eth0
    ip -n "${ns}" link set eth0 up
    ip -n "${sw}" link set "${b}" master br0
    ip -n "${sw}" link set "${b}" up
    echo "h${i} $(addr_of "${name}" "h${i}")" >>"${STATE_ROOT}/${name}/hosts"
  done
  cat "${STATE_ROOT}/${name}/hosts"
}

gc() {
  local dir name creator
  for dir in "${STATE_ROOT}"/*/; do
    [[ -d "${dir}" ]] || continue
    name="$(basename "${dir}")"
    creator="$(cat "${dir}/creator" 2>/dev/null || echo 0)"
    if ! kill -0 "${creator}" 2>/dev/null; then
      echo "netns-cluster.sh: removing leftover cluster ${name} (creator ${creator} is gone)" >&2
      down "${name}"
    fi
  done
  # namespaces of ours without a state folder (a crash between add and the state write)
  for name in $(ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^ibp-\([a-z0-9]\{1,8\}\)-\(sw\|h[0-9]*\)$/\1/p' | sort -u); do
    [[ -d "${STATE_ROOT}/${name}" ]] || down "${name}"
  done
}

ensure_sshd() {
  if [[ ! -x /usr/sbin/sshd ]]; then
    command -v apt-get >/dev/null || { echo "netns-cluster.sh: openssh-server is missing and apt-get is not available" >&2; exit 3; }
    # install without starting the machine's own sshd service
    local policy=/usr/sbin/policy-rc.d made=0
    if [[ ! -e "${policy}" ]]; then
      printf '#!/bin/sh\nexit 101\n' >"${policy}"
      chmod 755 "${policy}"
      made=1
    fi
    (apt-get install -y -q openssh-server >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q openssh-server >/dev/null 2>&1; }) || true
    ((made == 1)) && rm -f "${policy}"
    [[ -x /usr/sbin/sshd ]] || { echo "netns-cluster.sh: openssh-server could not be installed" >&2; exit 3; }
  fi
  mkdir -p /run/sshd
  chmod 755 /run/sshd
}

client_keys() {
  local dir="$1"
  [[ -f "${dir}/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C "ibp-netns-client" -f "${dir}/id_ed25519"
  cp "${dir}/id_ed25519.pub" "${dir}/authorized_keys"
  chmod 600 "${dir}/authorized_keys"
}

sshd_start() {
  local name="$1" host="$2" home="$3" dir ns addr conf
  dir="${STATE_ROOT}/${name}"
  [[ -d "${dir}" ]] || fail "no cluster ${name}: run up first"
  ensure_sshd
  client_keys "${dir}"
  ns="$(ns_of "${name}" "${host}")"
  addr="$(addr_of "${name}" "${host}")"
  [[ -f "${dir}/${host}_host_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C "${host}" -f "${dir}/${host}_host_ed25519"
  conf="${dir}/${host}_sshd_config"
  cat >"${conf}" <<EOF
ListenAddress ${addr}:22
HostKey ${dir}/${host}_host_ed25519
PidFile ${dir}/${host}_sshd.pid
AuthorizedKeysFile ${dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserEnvironment no
SetEnv IBP_HOME=${home}
LogLevel ERROR
EOF
  ip netns exec "${ns}" /usr/sbin/sshd -f "${conf}" -E "${dir}/${host}_sshd.log"
  # known_hosts: the host key we made, for this address only
  local line
  line="${addr} $(cut -d' ' -f1-2 "${dir}/${host}_host_ed25519.pub")"
  touch "${dir}/known_hosts"
  grep -v "^${addr} " "${dir}/known_hosts" >"${dir}/known_hosts.tmp" || true
  echo "${line}" >>"${dir}/known_hosts.tmp"
  mv "${dir}/known_hosts.tmp" "${dir}/known_hosts"
  for _ in $(seq 1 50); do
    ip netns exec "${ns}" bash -c "exec 3<>/dev/tcp/${addr}/22" 2>/dev/null && { echo "sshd ${host} ${addr}:22"; return 0; }
    sleep 0.1
  done
  fail "sshd on ${host} (${addr}:22) is not answering: see ${dir}/${host}_sshd.log"
}

(($# >= 1)) || usage
cmd="$1"
shift
case "${cmd}" in
  up)
    (($# == 2)) || usage
    need_root
    check_name "$1"
    up "$1" "$2"
    ;;
  down)
    (($# == 1)) || usage
    need_root
    check_name "$1"
    down "$1"
    ;;
  gc)
    need_root
    gc
    ;;
  list)
    for d in "${STATE_ROOT}"/*/; do
      [[ -f "${d}hosts" ]] || continue
      echo "$(basename "${d}"): $(tr '\n' ' ' <"${d}hosts")"
    done
    ;;
  addr)
    (($# == 2)) || usage
    check_name "$1"
    check_host "$2"
    addr_of "$1" "$2"
    ;;
  exec)
    (($# >= 3)) || usage
    need_root
    check_name "$1"
    check_host "$2"
    ns="$(ns_of "$1" "$2")"
    shift 2
    exec ip netns exec "${ns}" "$@"
    ;;
  sshd)
    (($# == 3)) || usage
    need_root
    check_name "$1"
    check_host "$2"
    sshd_start "$1" "$2" "$3"
    ;;
  ssh-files)
    (($# == 1)) || usage
    check_name "$1"
    echo "${STATE_ROOT}/$1/id_ed25519 ${STATE_ROOT}/$1/known_hosts"
    ;;
  *)
    usage
    ;;
esac

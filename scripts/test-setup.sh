#!/usr/bin/env bash
# Installs the Debian packages some tests drive for real (Prometheus, Chromium, rsyslog + RELP).
# Idempotent and quiet; never fails the test run: when a package cannot be had (not root,
# no apt, no network) the tests that need it skip with a message naming the package.
set -u
want=()
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v rsyslogd >/dev/null 2>&1 || want+=(rsyslog)
# RELP (reliable delivery, acknowledged per message) for the central log collection test
compgen -G '/usr/lib/*/rsyslog/omrelp.so' >/dev/null || want+=(rsyslog-relp)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-setup: missing ${want[*]} (needs root and apt-get); the tests that use them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t ibp-test-setup.XXXXXX)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}"; } >"$log" 2>&1; then
  echo "test-setup: apt-get could not install ${want[*]} (see $log); the tests that use them will skip" >&2
  exit 0
fi
rm -f "$log"
# Debian's packages start services on install; the tests start their own instances.
for svc in prometheus rsyslog; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done
exit 0

/**
 * The node agent's Prometheus metrics (`GET /metrics` on ibma.conf `metrics.ip:port`; policy in
 * lib/metrics-server.ts), read at scrape time from the agent's own state (what `ibma -s status`
 * shows) and its config-space writer. Names (prefixed `ibma_`):
 *
 *   config_version            version of the bundle held (0 = none yet)
 *   config_generation         generation of the last segment published (flips continue across restarts)
 *   config_flips_total        publications (index flips) by this process
 *   config_from_cache         1 when the held bundle came from the disk cache, not ibms
 *   segments_alive            config segments of this agent that exist (current + old, not yet collected)
 *   packages_installed_total  packages installed by this process
 *   packages_failed           packages refused or failed in the last sync (retried)
 *   registry_up               1 when the last exchange with ibms succeeded
 *   registry_failures         consecutive failed exchanges with ibms
 *   registry_link{link}       1 for the current link state (starting, connected, unreachable, rejected)
 */
import { Registry } from 'prom-client';
import type { Logger } from '../lib/log.js';
import { checkMetricsPolicy, snapshotMetric, startMetricsServer, type MetricsServer } from '../lib/metrics-server.js';
import type { Agent } from './agent.js';

const LINKS = ['starting', 'connected', 'unreachable', 'rejected'] as const;

export function agentRegistry(agent: Agent): Registry {
  const reg = new Registry();
  const one = (read: () => number) => () => [{ value: read() }];
  const st = () => agent.state;
  snapshotMetric(reg, 'ibma_config_version', 'Version of the config bundle held (0 = none yet).', 'gauge', one(() => st().held?.version ?? 0));
  snapshotMetric(reg, 'ibma_config_generation', 'Generation of the last config segment published.', 'gauge', one(() => st().published?.generation ?? 0));
  snapshotMetric(reg, 'ibma_config_flips_total', 'Config publications (index flips) by this process.', 'counter', one(() => st().flips ?? 0));
  snapshotMetric(reg, 'ibma_config_from_cache', '1 when the held bundle came from the disk cache.', 'gauge', one(() => (st().held?.source === 'cache' ? 1 : 0)));
  snapshotMetric(reg, 'ibma_segments_alive', 'Config segments of this agent that exist (current and not yet collected).', 'gauge', one(() => {
    const w = agent.writer;
    if (!w) return 0;
    return (w.current() ? 1 : 0) + w.oldSegments().length;
  }));
  snapshotMetric(reg, 'ibma_packages_installed_total', 'App packages installed by this process.', 'counter', one(() => st().packages.installed));
  snapshotMetric(reg, 'ibma_packages_failed', 'App packages refused or failed in the last sync.', 'gauge', one(() => st().packages.failed.length));
  snapshotMetric(reg, 'ibma_registry_up', '1 when the last exchange with ibms succeeded.', 'gauge', one(() => (st().ibms.link === 'connected' ? 1 : 0)));
  snapshotMetric(reg, 'ibma_registry_failures', 'Consecutive failed exchanges with ibms.', 'gauge', one(() => st().ibms.failures));
  snapshotMetric(reg, 'ibma_registry_link', 'The link to ibms (1 for the current state).', 'gauge', () => LINKS.map((link) => ({ value: st().ibms.link === link ? 1 : 0, labels: { link } })));
  return reg;
}

/** Start the endpoint when ibma.conf has a `metrics` section; undefined otherwise. */
export async function startAgentMetrics(agent: Agent, confFile: string, log: Logger): Promise<MetricsServer | undefined> {
  const m = agent.conf.metrics;
  if (!m) return undefined;
  checkMetricsPolicy(m, confFile);
  return startMetricsServer(m, agentRegistry(agent), log, 'ibma');
}

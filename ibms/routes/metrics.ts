/**
 * `GET /metrics` of ibms: Prometheus text (prom-client), served by the registry's own fastify on
 * its server address when ibms.conf has a `metrics` section (off otherwise). Access class
 * `metrics`: the admin credential, or ibms.conf `metrics.token` when set (a read-only scrape
 * credential for Prometheus), as `Authorization: Bearer …`. Names (prefixed `ibms_`):
 *
 *   nodes, apps, projects                 what the registry holds
 *   nodes_changed                         nodes touched since the last distribute_config
 *   config_version_max                    highest config version of any node (this epoch)
 *   watches                               blocking watches held
 *   sessions{role}                        live sessions (ibma, ibas)
 *   session_load{node,host}               load each ibas reported in its last heartbeat
 *   requests_total{method,route,status}   REST requests answered
 *   process_* / nodejs_*                  prom-client's default process metrics
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../lib/log.js';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { snapshotMetric } from '../../lib/metrics-server.js';
import type { Registry as IbpRegistry } from '../registry.js';

export function registryMetrics(reg: IbpRegistry): { registry: Registry; requests: Counter<'method' | 'route' | 'status'> } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const one = (read: () => number) => () => [{ value: read() }];
  snapshotMetric(registry, 'ibms_nodes', 'Nodes in the registry.', 'gauge', one(() => reg.store.nodes.size));
  snapshotMetric(registry, 'ibms_apps', 'Apps in the registry.', 'gauge', one(() => reg.store.apps.size));
  snapshotMetric(registry, 'ibms_projects', 'Projects in the registry.', 'gauge', one(() => reg.store.projects.size));
  snapshotMetric(registry, 'ibms_nodes_changed', 'Nodes touched since the last distribute_config.', 'gauge', one(() => reg.versions.changed().length));
  snapshotMetric(registry, 'ibms_config_version_max', 'Highest config version of any node in this epoch.', 'gauge', one(() => Math.max(0, ...[...reg.store.nodes.keys()].map((n) => reg.versions.version(n)))));
  snapshotMetric(registry, 'ibms_watches', 'Blocking config watches held.', 'gauge', one(() => reg.versions.waiting()));
  snapshotMetric(registry, 'ibms_sessions', 'Live sessions by role.', 'gauge', () => {
    const by = new Map<string, number>([['ibma', 0], ['ibas', 0]]);
    for (const s of reg.sessions.list()) by.set(s.role, (by.get(s.role) ?? 0) + 1);
    return [...by].map(([role, value]) => ({ value, labels: { role } }));
  });
  snapshotMetric(registry, 'ibms_session_load', 'Load (busy workers) each ibas reported in its last heartbeat.', 'gauge',
    () => reg.sessions.list().filter((s) => s.role === 'ibas' && s.load !== undefined).map((s) => ({ value: s.load!, labels: { node: s.node, host: `${s.ip}:${s.port}` } })));
  const requests = new Counter({ name: 'ibms_requests_total', help: 'REST requests answered.', labelNames: ['method', 'route', 'status'], registers: [registry] });
  return { registry, requests };
}

/** Add `GET /metrics` and the request counter to the root fastify instance (ibms/server.ts). */
export function installMetrics(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, reg: IbpRegistry): void {
  if (!reg.conf.metrics) return;
  const { registry, requests } = registryMetrics(reg);
  app.addHook('onResponse', async (req, reply) => {
    requests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });
  app.get('/metrics', { config: { access: 'metrics' as const } }, async (_req, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}

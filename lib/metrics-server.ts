/**
 * A daemon's own Prometheus endpoint: a small node:http listener on the conf's `metrics.ip:port`
 * answering `GET /metrics` with a prom-client registry in the Prometheus text format (ibas
 * manager, ibma; ibms serves /metrics in its fastify instead, ibms/routes/metrics.ts).
 *
 * Credential policy (the `metrics` section of each daemon's conf, lib/config/common.ts):
 *   - no section: no endpoint (off by default);
 *   - on a loopback address (127.0.0.0/8) a token is optional;
 *   - on any other address a token is required (the config is refused otherwise);
 *   - with a token, a request without `Authorization: Bearer <token>` is 401.
 * Anything but GET /metrics is 404. A scrape that fails to collect is 500 and a log line; it never
 * stops the daemon.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { IbpError, errorText } from './errors.js';
import type { MetricsSection } from './config/common.js';
import type { Logger } from './log.js';

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.');
}

/** Refuse a metrics section that would expose the endpoint beyond this host without a token. */
export function checkMetricsPolicy(m: MetricsSection | undefined, file: string): void {
  if (m && !isLoopback(m.ip) && !m.token) {
    throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/metrics/token', detail: `is required when metrics.ip (${m.ip}) is not a loopback address` });
  }
}

/** Constant-time comparison of a presented bearer token with the configured one. */
export function tokenMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return false;
  const a = crypto.createHash('sha256').update(m[1]!).digest();
  const b = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(a, b);
}

export interface MetricsServer {
  /** The bound address, e.g. `127.0.0.1:9464`. */
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(m: MetricsSection, registry: Registry, log: Logger, what: string): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    if (m.token && !tokenMatches(req.headers.authorization, m.token)) {
      log.warn({ remote: req.socket.remoteAddress }, `metrics auth refused , remote[${req.socket.remoteAddress}] , ${req.headers.authorization ? 'wrong' : 'no'} token`);
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end('bearer token required (metrics.token)\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => {
        log.error(`metrics collection failed , reason[${errorText(e)}]`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${errorText(e)}\n`);
      },
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(m.port, m.ip, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    throw new IbpError('IBP_ERR_DAEMON_START', { tool: what, detail: `metrics endpoint ${m.ip}:${m.port}: ${errorText(e)}`, log: 'the daemon log' });
  });
  server.unref();
  const a = server.address() as AddressInfo;
  const address = `${a.address}:${a.port}`;
  log.info(`metrics endpoint listening , address[${address}] token[${m.token ? 'required' : 'none'}]`);
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface SampleValue { value: number; labels?: Record<string, string | number>; metricName?: string }

/**
 * A metric whose samples are read at scrape time from state owned elsewhere (shared memory, a
 * store): prom-client's registry only asks a metric for `name` and `get()`, so a counter read
 * from the scoreboard keeps its Prometheus type (`counter`, `histogram`) without replaying
 * increments into a prom-client Counter.
 */
export function snapshotMetric(reg: Registry, name: string, help: string, type: 'counter' | 'gauge' | 'histogram', read: () => SampleValue[]): void {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: read() }),
    reset: () => undefined,
  };
  reg.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/** Samples of a histogram named `name` from per-bucket (not cumulative) counts. */
export function histogramSamples(name: string, boundsSeconds: readonly number[], buckets: readonly number[], sumSeconds: number, labels: Record<string, string>): SampleValue[] {
  const out: SampleValue[] = [];
  let cum = 0;
  boundsSeconds.forEach((le, i) => {
    cum += buckets[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, value: cum, labels: { ...labels, le } });
  });
  cum += buckets[boundsSeconds.length] ?? 0;
  out.push({ metricName: `${name}_bucket`, value: cum, labels: { ...labels, le: '+Inf' } });
  out.push({ metricName: `${name}_sum`, value: sumSeconds, labels });
  out.push({ metricName: `${name}_count`, value: cum, labels });
  return out;
}

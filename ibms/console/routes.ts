/**
 * The live web console of ibms (read-only): `GET /console` (the page, public: it holds no data),
 * `POST /console/login` (the admin credential or ibms.conf `metrics.token` → an HttpOnly session
 * cookie), `GET /console/events` (Server-Sent Events, the cookie's access class `console`): every
 * second the cluster state — projects (the cluster map), the registry's counts, hosts of every node
 * with their state and load (from the ibas heartbeats) and transaction / error rates (read from
 * each ibas manager's token-free /metrics, whose address its heartbeat carries), sessions with the
 * config version each agent holds, and recent events (sessions appearing and leaving, config
 * versions distributed, loads changing), derived by comparing one state with the next.
 * Sessions live in the worker's memory for 12 hours; nothing the console does changes the registry.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { IbpError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { tokenMatches } from '../../lib/metrics-server.js';
import type { Registry } from '../registry.js';

const COOKIE = 'ibp_console';
const SESSION_MS = 12 * 3600 * 1000;
const MAX_EVENTS = 100;

function pageHtml(): string {
  for (const rel of ['./page.html', '../../../ibms/console/page.html']) {
    try {
      return fs.readFileSync(new URL(rel, import.meta.url), 'utf8');
    } catch {
      // next
    }
  }
  return '<!doctype html><title>IBP-TS console</title><p>console page missing from this install</p>';
}

function cookieOf(req: FastifyRequest): string | undefined {
  const m = new RegExp(`(?:^|;\\s*)${COOKIE}=([A-Za-z0-9_-]+)`).exec(req.headers.cookie ?? '');
  return m?.[1];
}

interface Rates { at: number; tx: number; errors: number; txRate?: number; errorRate?: number }

export class Console {
  readonly #reg: Registry;
  readonly #log: Logger;
  readonly #sessions = new Map<string, number>();
  readonly #events: { at: number; text: string }[] = [];
  readonly #rates = new Map<string, Rates>();
  #prev: { sessions: Map<string, { load?: number }>; versions: Map<string, number> } | undefined;

  constructor(reg: Registry, log: Logger) {
    this.#reg = reg;
    this.#log = log;
  }

  login(credential: unknown, remote: string): string {
    const cred = typeof credential === 'string' ? credential : '';
    const p = this.#reg.credentials.identify(cred);
    const token = this.#reg.conf.metrics?.token;
    const ok = p?.kind === 'admin' || (token !== undefined && tokenMatches(`Bearer ${cred}`, token));
    if (!ok) {
      this.#log.warn({ remote }, `console login refused , remote[${remote}]`);
      throw new IbpError('IBP_ERR_REG_AUTH');
    }
    const id = crypto.randomBytes(24).toString('base64url');
    const now = Date.now();
    for (const [k, exp] of this.#sessions) if (exp < now) this.#sessions.delete(k);
    this.#sessions.set(id, now + SESSION_MS);
    this.#log.info({ remote }, `console login , remote[${remote}]`);
    return id;
  }

  signedIn(req: FastifyRequest): boolean {
    const id = cookieOf(req);
    const exp = id ? this.#sessions.get(id) : undefined;
    return exp !== undefined && exp > Date.now();
  }

  #event(text: string): void {
    this.#events.push({ at: Date.now(), text });
    if (this.#events.length > MAX_EVENTS) this.#events.splice(0, this.#events.length - MAX_EVENTS);
  }

  /** Read each ibas manager's /metrics (bounded, best effort) and keep per-second rates. */
  async scrape(): Promise<void> {
    const targets = this.#reg.sessions.list().filter((s) => s.role === 'ibas' && s.metrics);
    await Promise.all(targets.map(async (s) => {
      const key = `${s.ip}:${s.port}`;
      try {
        const r = await fetch(`http://${s.metrics}/metrics`, { signal: AbortSignal.timeout(800) });
        const text = await r.text();
        const num = (name: string): number => Number(new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
        const now: Rates = { at: Date.now(), tx: num('ibas_transactions_total'), errors: num('ibas_errors_total') };
        const before = this.#rates.get(key);
        if (before && now.at > before.at && Number.isFinite(now.tx)) {
          const dt = (now.at - before.at) / 1000;
          now.txRate = Math.round((Math.max(0, now.tx - before.tx) / dt) * 10) / 10;
          now.errorRate = Math.round((Math.max(0, now.errors - before.errors) / dt) * 10) / 10;
        }
        this.#rates.set(key, now);
      } catch {
        // the server's metrics are not reachable now: no rate shown
      }
    }));
  }

  /** The state the page shows; also records what changed since the last one as events. */
  state(): Record<string, unknown> {
    const reg = this.#reg;
    const now = Date.now();
    const sessions = reg.sessions.list();
    const bySession = new Map(sessions.map((s) => [`${s.role} ${s.node} ${s.ip}:${s.port} pid ${s.pid}`, s]));
    const versions = new Map([...reg.store.nodes.keys()].map((n) => [n, reg.versions.version(n)]));
    if (this.#prev) {
      for (const [k, s] of bySession) {
        const before = this.#prev.sessions.get(k);
        if (!before) this.#event(`session started: ${k}`);
        else if (s.role === 'ibas' && (before.load ?? 0) !== (s.load ?? 0)) this.#event(`load ${before.load ?? 0} → ${s.load ?? 0}: ${s.node} ${s.ip}:${s.port}`);
      }
      for (const k of this.#prev.sessions.keys()) if (!bySession.has(k)) this.#event(`session ended: ${k}`);
      for (const [n, v] of versions) if ((this.#prev.versions.get(n) ?? v) !== v) this.#event(`config version ${v} distributed to ${n}`);
    }
    this.#prev = { sessions: new Map([...bySession].map(([k, s]) => [k, { load: s.load }])), versions };
    const hosts = [...reg.store.nodes.values()].flatMap((n) => (n.hosts ?? []).map((h) => {
      const key = `${h.ip}:${h.port}`;
      const s = sessions.find((x) => x.role === 'ibas' && x.ip === h.ip && x.port === h.port);
      const r = this.#rates.get(key);
      return { node: n.node, host: key, invalid: h.invalid ?? 0, up: s !== undefined, pid: s?.pid, load: s?.load, tx_rate: r?.txRate, error_rate: r?.errorRate };
    }));
    return {
      at: now,
      epoch: reg.versions.epoch,
      registry: { nodes: reg.store.nodes.size, apps: reg.store.apps.size, projects: reg.store.projects.size, nodes_changed: reg.versions.changed().length, watches: reg.versions.waiting(), sessions: sessions.length },
      projects: [...reg.store.projects.values()],
      hosts,
      sessions: sessions.map((s) => {
        const current_version = versions.get(s.node) ?? null;
        return { role: s.role, node: s.node, ip: s.ip, port: s.port, pid: s.pid, load: s.load, version: s.version, current_version, current: s.version === undefined ? null : s.epoch === reg.versions.epoch && s.version === current_version, idle_seconds: Math.round((now - s.last_seen) / 100) / 10 };
      }),
      events: this.#events.slice(-30),
    };
  }
}

/** Routes of the console on the root fastify instance (ibms/server.ts). */
export function installConsole(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, reg: Registry): Console {
  const con = new Console(reg, reg.log);
  const page = pageHtml();
  const open = { config: { access: 'public' as const } };
  const streams = new Set<() => void>();
  // before the server closes: an open event stream would hold the close until its client left
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  app.get('/console', open, async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page));
  app.post('/console/login', open, async (req, reply) => {
    const id = con.login((req.body as { credential?: unknown } | undefined)?.credential, req.ip);
    return reply.header('set-cookie', `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age=${SESSION_MS / 1000}`).send({ ok: true });
  });
  app.get('/console/events', { config: { access: 'console' as const } }, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    let stopped = false;
    const send = async (): Promise<void> => {
      if (stopped) return;
      await con.scrape();
      if (!stopped) res.write(`data: ${JSON.stringify(con.state())}\n\n`);
    };
    void send();
    const timer = setInterval(() => void send(), 1000);
    const stop = (): void => {
      stopped = true;
      clearInterval(timer);
      streams.delete(end);
    };
    const end = (): void => {
      stop();
      res.end();
    };
    streams.add(end);
    req.raw.on('close', stop);
  });
  return con;
}

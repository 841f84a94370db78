/**
 * The ibms REST server: a fastify instance over a {@link Registry}, built but not listening
 * (tests use inject(); the worker listens).
 *
 * - Bodies: JSON, or lz4-compressed JSON with `Content-Encoding: lz4` (lib/codec/json-body.ts);
 *   over `comm.max_body_size` → 413, malformed JSON or lz4 → 400. An lz4 body that expands past
 *   its declared size → 413 before anything is allocated (lib/codec/lz4.ts); decoded lz4 bodies
 *   held at once are bounded by `comm.max_decode_total` (each until its answer is sent) → 503.
 * - Answers: JSON; lz4-compressed when at least `comm.min_compress_size` bytes and the request
 *   said `Accept-Encoding: lz4`.
 * - Auth: `Authorization: Bearer <credential>` on every route. Each route declares its access
 *   class and the matrix of ibms/access.ts decides (401 / 403 / through); a route without a
 *   class, or missing from ROUTE_ACCESS, makes the server refuse to start (onRoute). Checked
 *   before the body is read. Requests with a missing or wrong credential are counted per client
 *   address (@fastify/rate-limit): past `auth.max_failures` in the window → 429.
 * - Errors: `{code, message}` with the status of lib/errors.ts.
 * - Stop: close() answers every held watch at once, then waits for requests in flight.
 */
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { decodeJsonBody, acceptsLz4 } from '../lib/codec/json-body.js';
import { DecodeBudget, LZ4_ENCODING, lz4Compress, lz4DeclaredSize } from '../lib/codec/lz4.js';
import { IbpError, errorText } from '../lib/errors.js';
import { ACCESS_MATRIX, routeProblem, type Access } from './access.js';
import { bearerToken, type Principal } from './credentials.js';
import type { Registry } from './registry.js';
import { nodeRoutes } from './routes/nodes.js';
import { appRoutes } from './routes/apps.js';
import { projectRoutes } from './routes/projects.js';
import { configRoutes } from './routes/config.js';
import { agentRoutes } from './routes/agent.js';
import { credentialRoutes } from './routes/credentials.js';
import { nodeKeyRoutes } from './routes/node-keys.js';

export type { Access } from './access.js';
import { installMetrics } from './routes/metrics.js';
import { installConsole } from './console/routes.js';
import { tokenMatches } from '../lib/metrics-server.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /** Bytes of this request's decoded lz4 body held in the decode budget. */
    decodeHeld: number;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** Map whatever a route or fastify threw to an IbpError. */
export function toIbpError(err: FastifyError | Error, req: FastifyRequest): IbpError {
  if (err instanceof IbpError) return err;
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: req.headers['content-length'] ?? 'more', limit: req.server.initialConfig.bodyLimit });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new IbpError('IBP_ERR_REG_INVALID', { detail: `content type ${JSON.stringify(req.headers['content-type'] ?? '')} is not supported: send application/json` });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new IbpError('IBP_ERR_CODEC_JSON', { detail: err.message });
    default:
  }
  if (status === 503) return new IbpError('IBP_ERR_REG_STOPPING');
  if (status !== undefined && status >= 400 && status < 500) return new IbpError('IBP_ERR_REG_INVALID', { detail: err.message });
  return new IbpError('IBP_ERR_REG_INTERNAL', { what: `${req.method} ${req.url}`, detail: err.message }, { cause: err });
}

/** Answer a JSON text already serialised (bundles are cached as text). */
export function sendJsonText(reply: FastifyReply, json: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json);
}

const DEFAULT_AUTH = { max_failures: 10, failure_window_seconds: 60 };

function describe(p: Principal): string {
  return p.kind === 'node' ? `node ${p.node}` : p.kind === 'admin-ro' ? 'the read-only admin credential' : 'the admin';
}

/** `onRoute`: told of every route as it is registered (tests compare them with ROUTE_ACCESS). */
export function buildServer(reg: Registry, opts: { onRoute?: (method: string, url: string, access: unknown) => void } = {}) {
  const maxBody = reg.conf.comm.max_body_size;
  const minCompress = reg.conf.comm.min_compress_size;
  const budget = new DecodeBudget(reg.conf.comm.max_decode_total ?? 4 * maxBody);
  const auth = reg.conf.auth ?? DEFAULT_AUTH;
  const app = Fastify({
    loggerInstance: reg.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: maxBody,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // watches are held up to session.max_wait_seconds: keep the socket longer than that
    keepAliveTimeout: 5000,
    // every route is in ROUTE_ACCESS with its method: no implicit HEAD twins
    exposeHeadRoutes: false,
  });
  app.decorateRequest('decodeHeld', 0);

  // fail closed: a route without a declared, known and tabled access class stops the start
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      opts.onRoute?.(m, route.url, (route.config as { access?: unknown } | undefined)?.access);
      const problem = routeProblem(m, route.url, (route.config as { access?: unknown } | undefined)?.access);
      if (problem) throw new IbpError('IBP_ERR_REG_INTERNAL', { what: 'the route table', detail: problem });
    }
  });

  // requests without a valid credential are counted per client; a valid one is never limited
  void app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: auth.max_failures,
    timeWindow: Math.round(auth.failure_window_seconds * 1000),
    keyGenerator: (req) => req.ip,
    allowList: (req) => {
      const access = (req.routeOptions.config as { access?: Access } | undefined)?.access;
      // the console's page and its event stream carry no bearer credential (a session cookie at
      // most); its login, which takes a credential, is limited like any refused request
      if ((access === 'public' && req.method === 'GET') || access === 'console') return true;
      req.principal = reg.credentials.identify(bearerToken(req.headers.authorization));
      const scrapeToken = reg.conf.metrics?.token;
      return req.principal !== undefined || (access === 'metrics' && !!scrapeToken && tokenMatches(req.headers.authorization, scrapeToken));
    },
    onExceeded: (req) => {
      reg.log.warn({ remote: req.ip }, `auth rate limited , remote[${req.ip}] over ${auth.max_failures} refused credentials in ${auth.failure_window_seconds} s`);
    },
    errorResponseBuilder: (req, ctx) => new IbpError('IBP_ERR_REG_RATE_LIMITED', { client: req.ip, seconds: Math.max(1, Math.ceil(ctx.ttl / 1000)) }),
  });

  // decoding and parsing are one synchronous step: every lz4 body is decoded into this buffer
  let scratch: Buffer | undefined;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: maxBody }, (req, body, done) => {
    try {
      const enc = req.headers['content-encoding'];
      if (typeof enc === 'string' && enc.trim().toLowerCase() === LZ4_ENCODING) {
        const declared = lz4DeclaredSize(body as Buffer);
        if (declared > maxBody) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: declared, limit: maxBody });
        if (!budget.take(declared)) {
          reg.log.warn(`decode budget full , remote[${req.ip}] held[${budget.held}] limit[${budget.limit}] asked[${declared}]`);
          throw new IbpError('IBP_ERR_CODEC_BUSY', { held: budget.held, limit: budget.limit });
        }
        req.decodeHeld = declared;
      }
      scratch ??= Buffer.allocUnsafe(maxBody);
      done(null, decodeJsonBody(body as Buffer, enc, maxBody, scratch));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  const release = async (req: FastifyRequest): Promise<void> => {
    if (req.decodeHeld > 0) {
      budget.give(req.decodeHeld);
      req.decodeHeld = 0;
    }
  };
  app.addHook('onResponse', release);
  app.addHook('onRequestAbort', release);

  app.addHook('preParsing', async (req) => {
    const access: Access | undefined = req.routeOptions.config.access;
    if (!access) return; // unknown route: the 404 handler answers
    if (access === 'public') return;
    if (access === 'console') {
      if (consoleRoutes.signedIn(req)) return;
      throw new IbpError('IBP_ERR_REG_AUTH');
    }
    const scrapeToken = reg.conf.metrics?.token;
    if (access === 'metrics' && scrapeToken && tokenMatches(req.headers.authorization, scrapeToken)) return;
    const principal = req.principal ?? reg.credentials.identify(bearerToken(req.headers.authorization));
    const verdict = ACCESS_MATRIX[access][principal ? principal.kind : 'none'];
    if (!principal || verdict === 401) {
      reg.log.warn({ remote: req.ip, url: req.url }, `auth refused , remote[${req.ip}] ${req.method} ${req.url.split('?')[0]} , ${req.headers.authorization ? 'wrong' : 'no'} credential`);
      throw new IbpError('IBP_ERR_REG_AUTH');
    }
    if (verdict === 403) {
      reg.log.warn(`forbidden , ${describe(principal)} ${req.method} ${req.url.split('?')[0]} class[${access}]`);
      throw new IbpError('IBP_ERR_REG_FORBIDDEN', { who: describe(principal), what: access === 'node' ? 'agent endpoints (use the node credential)' : access === 'admin' ? 'changes or secrets (use the admin credential, keys/admin.credential)' : 'admin views (use keys/admin.credential or keys/admin-ro.credential)' });
    }
    req.principal = principal;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.getHeader('content-encoding')) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('application/json')) return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    reply.header('vary', 'accept-encoding');
    const raw = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (raw.length < minCompress || !acceptsLz4(req.headers['accept-encoding'])) return payload;
    const packed = lz4Compress(raw);
    if (!packed) return payload;
    reply.header('content-encoding', LZ4_ENCODING);
    return packed;
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toIbpError(err, req);
    if (e.http >= 500 && e.code !== 'IBP_ERR_REG_STOPPING' && e.code !== 'IBP_ERR_CODEC_BUSY') reg.log.error({ err }, `${req.method} ${req.url} failed , ${errorText(e)}`);
    else if (e.code !== 'IBP_ERR_REG_AUTH' && e.code !== 'IBP_ERR_REG_FORBIDDEN' && e.code !== 'IBP_ERR_REG_RATE_LIMITED') reg.log.info(`${req.method} ${req.url.split('?')[0]} refused , ${errorText(e)}`);
    void reply.status(e.http).send(e.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const url = req.url.split('?')[0];
    // /metrics exists only with ibms.conf metrics: say so rather than a bare 404
    const off = url === '/metrics' && !reg.conf.metrics ? ' (metrics are off: add "metrics": {} to ibms.conf and restart ibms)' : '';
    const e = new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'endpoint', name: `${req.method} ${url}${off}` });
    void reply.status(e.http).send(e.toJSON());
  });

  app.addHook('preClose', async () => {
    reg.versions.close();
  });
  app.addHook('onClose', async () => {
    await reg.packages.close();
    await reg.settle();
  });

  installMetrics(app, reg);
  const consoleRoutes = installConsole(app, reg);
  app.register(nodeRoutes(reg), { prefix: '/v1' });
  app.register(appRoutes(reg), { prefix: '/v1' });
  app.register(projectRoutes(reg), { prefix: '/v1' });
  app.register(configRoutes(reg), { prefix: '/v1' });
  app.register(agentRoutes(reg), { prefix: '/v1/agent' });
  app.register(credentialRoutes(reg), { prefix: '/v1' });
  app.register(nodeKeyRoutes(reg), { prefix: '/v1' });
  return app;
}
export type IbmsServer = ReturnType<typeof buildServer>;

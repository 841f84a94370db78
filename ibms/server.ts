/**
 * The ibms REST server: a fastify instance over a {@link Registry}, built but not listening
 * (tests use inject(); the worker listens).
 *
 * - Bodies: JSON, or lz4-compressed JSON with `Content-Encoding: lz4` (lib/codec/json-body.ts);
 *   over `comm.max_body_size` → 413, malformed JSON or lz4 → 400.
 * - Answers: JSON; lz4-compressed when at least `comm.min_compress_size` bytes and the request
 *   said `Accept-Encoding: lz4`.
 * - Auth: `Authorization: Bearer <credential>` on every route; admin routes take the admin
 *   credential, agent routes the node's own (or the admin's). Missing or wrong → 401 and a log line.
 * - Errors: `{code, message}` with the status of lib/errors.ts.
 * - Stop: close() answers every held watch at once, then waits for requests in flight.
 */
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { decodeJsonBody, acceptsLz4 } from '../lib/codec/json-body.js';
import { LZ4_ENCODING, lz4Compress } from '../lib/codec/lz4.js';
import { IbpError, errorText } from '../lib/errors.js';
import { bearerToken, type Principal } from './credentials.js';
import type { Registry } from './registry.js';
import { nodeRoutes } from './routes/nodes.js';
import { appRoutes } from './routes/apps.js';
import { projectRoutes } from './routes/projects.js';
import { configRoutes } from './routes/config.js';
import { agentRoutes } from './routes/agent.js';
import { installMetrics } from './routes/metrics.js';
import { installConsole } from './console/routes.js';
import { tokenMatches } from '../lib/metrics-server.js';

/**
 * Who may call a route: the admin, a node (or the admin), a metrics scraper (admin or ibms.conf
 * metrics.token), anyone (`public`: the console's page and login, which hold no data), or a
 * signed-in console session (`console`: its cookie; ibms/console/routes.ts).
 */
export type Access = 'admin' | 'node' | 'metrics' | 'public' | 'console';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
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

export function buildServer(reg: Registry) {
  const maxBody = reg.conf.comm.max_body_size;
  const minCompress = reg.conf.comm.min_compress_size;
  const app = Fastify({
    loggerInstance: reg.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: maxBody,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // watches are held up to session.max_wait_seconds: keep the socket longer than that
    keepAliveTimeout: 5000,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: maxBody }, (req, body, done) => {
    try {
      done(null, decodeJsonBody(body as Buffer, req.headers['content-encoding'], maxBody));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access;
    if (!access) return; // unknown route: the 404 handler answers
    if (access === 'public') return;
    if (access === 'console') {
      if (consoleRoutes.signedIn(req)) return;
      throw new IbpError('IBP_ERR_REG_AUTH');
    }
    const scrapeToken = reg.conf.metrics?.token;
    if (access === 'metrics' && scrapeToken && tokenMatches(req.headers.authorization, scrapeToken)) return;
    const principal = reg.credentials.identify(bearerToken(req.headers.authorization));
    if (!principal) {
      reg.log.warn({ remote: req.ip, url: req.url }, `auth refused , remote[${req.ip}] ${req.method} ${req.url.split('?')[0]} , ${req.headers.authorization ? 'wrong' : 'no'} credential`);
      throw new IbpError('IBP_ERR_REG_AUTH');
    }
    if ((access === 'admin' || access === 'metrics') && principal.kind !== 'admin') {
      reg.log.warn(`forbidden , node[${principal.node}] ${req.method} ${req.url.split('?')[0]}`);
      throw new IbpError('IBP_ERR_REG_FORBIDDEN', { who: `node ${principal.node}`, what: 'admin commands (use the admin credential)' });
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
    if (e.http >= 500 && e.code !== 'IBP_ERR_REG_STOPPING') reg.log.error({ err }, `${req.method} ${req.url} failed , ${errorText(e)}`);
    else if (e.code !== 'IBP_ERR_REG_AUTH' && e.code !== 'IBP_ERR_REG_FORBIDDEN') reg.log.info(`${req.method} ${req.url.split('?')[0]} refused , ${errorText(e)}`);
    void reply.status(e.http).send(e.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'endpoint', name: `${req.method} ${req.url.split('?')[0]}` });
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
  return app;
}
export type IbmsServer = ReturnType<typeof buildServer>;

/**
 * The ibcmd HTTP API (fastify), built without listening so it can be served or injected.
 *
 *   GET  /v1/status          who and where the agent is, requests served, commands running
 *   POST /v1/exec            {"cmd": "ibas.sh status", "user"?: "ecif"} → the command's result
 *   GET  /v1/files           the sandbox's files
 *   PUT  /v1/files/:name     body = the file's bytes (application/octet-stream) → {name,size,sha256}
 *   GET  /v1/files/:name     the file's bytes, header X-Ibp-Sha256
 *
 * Every request must carry `Authorization: Bearer <credential>` of one of the agent's callers
 * (checked before routing, so an unauthenticated caller learns nothing, not even which paths
 * exist). Requests with a missing or wrong credential are counted per client address
 * (@fastify/rate-limit): past `auth.max_failures` in the window they get 429 — unknown paths
 * included, so a 404 can never serve as an oracle for guesses. Errors answer `{code, message}`
 * with the error table's HTTP status. Every request — refused or not — leaves one line in the
 * audit log, naming the caller, when its answer is sent.
 */
import os from 'node:os';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type onRequestAsyncHookHandler } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { IbpError, errorText, isIbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { auditCommand, MAX_COMMAND_LENGTH, type Policy } from './audit.js';
import { identifyCaller, type CallerSecret } from './credential.js';
import type { ExecOptions, Runner } from './exec.js';
import type { Sandbox } from './transfer.js';

export interface AgentState {
  ip: string;
  port: number;
  home: string;
  user: string;
  startedAt: number;
  policy: Policy;
  sandbox: Sandbox;
  runner: Runner;
  /** Every caller and its credential. */
  callers: CallerSecret[];
  /** Brute-force limit: wrong credentials per client address per window. */
  auth: { max_failures: number; failure_window_seconds: number };
  exec: Omit<ExecOptions, 'cwd' | 'home'>;
  log: Logger;
  audit: Logger;
  requests: number;
  refused: number;
  /** Set on SIGTERM: answers then carry `Connection: close` so the server can drain. */
  stopping: boolean;
}

export interface AgentStatus {
  pid: number;
  user: string;
  home: string;
  ip: string;
  port: number;
  sandbox: string;
  started: string;
  uptime_s: number;
  requests: number;
  refused: number;
  running: number;
}

/** What the audit line of a request says beyond method, url and status. */
interface AuditNote {
  cmd?: string;
  file?: string;
  verdict?: 'ran' | 'refused' | 'sent' | 'stored';
  code?: number | null;
  signal?: string | null;
  timedOut?: boolean;
  bytes?: number;
  error?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    ibcmdNote: AuditNote | null;
    /** The caller the credential names ('' before authentication or when refused). */
    ibcmdCaller: string;
  }
}

function note(req: FastifyRequest, n: AuditNote): void {
  req.ibcmdNote = { ...(req.ibcmdNote ?? {}), ...n };
}

/** Map any failure to an IbpError (fastify's own errors included). */
function asIbpError(e: unknown): IbpError {
  if (e instanceof IbpError) return e;
  const fe = e as FastifyError;
  if (fe?.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fe?.statusCode === 413) return new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: 'more', limit: 'the agent\'s limit' });
  if (fe?.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fe?.statusCode === 415) {
    return new IbpError('IBP_ERR_CODEC_JSON', { detail: 'Content-Type must be application/json (exec) or application/octet-stream (put)' });
  }
  if (typeof fe?.code === 'string' && fe.code.startsWith('FST_ERR_CTP_') && (fe.statusCode ?? 500) < 500) return new IbpError('IBP_ERR_CODEC_JSON', { detail: fe.message });
  if ((fe?.statusCode ?? 500) < 500) return new IbpError('IBP_ERR_CMD_SYNTAX', { detail: fe.message });
  return new IbpError('IBP_ERR_CMD_INTERNAL', { detail: errorText(e) });
}

export function status(s: AgentState): AgentStatus {
  return {
    pid: process.pid,
    user: s.user,
    home: s.home,
    ip: s.ip,
    port: s.port,
    sandbox: s.sandbox.root,
    started: new Date(s.startedAt).toISOString(),
    uptime_s: Math.round((Date.now() - s.startedAt) / 1000),
    requests: s.requests,
    refused: s.refused,
    running: s.runner.running,
  };
}

export function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '?');
  }
}

export function buildServer(s: AgentState, opts: { commandTimeoutMs: number }): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    requestTimeout: opts.commandTimeoutMs + 60_000,
    connectionTimeout: opts.commandTimeoutMs + 60_000,
    return503OnClosing: true,
    // longer than any plain file name, so a long name reaches checkPlainFileName and its message
    routerOptions: { maxParamLength: 1024 },
  });
  app.decorateRequest('ibcmdNote', null);
  app.decorateRequest('ibcmdCaller', '');

  // counts only requests with a missing or wrong credential (called by the auth hook below)
  void app.register(rateLimit, {
    global: false,
    keyGenerator: (req) => req.ip,
    onExceeded: (req) => s.log.warn(`auth rate limited , from[${req.ip}] over ${s.auth.max_failures} refused credentials in ${s.auth.failure_window_seconds} s`),
    errorResponseBuilder: (req, ctx) => new IbpError('IBP_ERR_CMD_RATE_LIMITED', { client: req.ip, seconds: Math.max(1, Math.ceil(ctx.ttl / 1000)) }),
  });
  let countFailure: onRequestAsyncHookHandler | undefined;

  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: s.sandbox.maxFileSize }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async function (req, reply) {
    s.requests += 1;
    const caller = identifyCaller(req.headers.authorization, s.callers);
    if (caller !== undefined) {
      req.ibcmdCaller = caller;
      return;
    }
    countFailure ??= app.rateLimit({ max: s.auth.max_failures, timeWindow: Math.round(s.auth.failure_window_seconds * 1000) }) as onRequestAsyncHookHandler;
    await countFailure.call(this, req, reply); // throws IBP_ERR_CMD_RATE_LIMITED past the limit
    throw new IbpError('IBP_ERR_CMD_AUTH');
  });

  app.addHook('onSend', async (_req, reply) => {
    if (s.stopping) void reply.header('connection', 'close');
  });

  app.addHook('onResponse', async (req, reply) => {
    const n = req.ibcmdNote ?? {};
    if (reply.statusCode >= 400) s.refused += 1;
    s.audit.info({
      from: req.ip,
      caller: req.ibcmdCaller || null,
      method: req.method,
      url: req.url.slice(0, 512),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      ...n,
    }, `request , caller[${req.ibcmdCaller || '-'}] from[${req.ip}] ${req.method}[${req.url.slice(0, 128)}] status[${reply.statusCode}]${n.cmd !== undefined ? ` cmd[${n.cmd}]` : ''}${n.file !== undefined ? ` file[${n.file}]` : ''}`);
  });

  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = asIbpError(err);
    if (e.code === 'IBP_ERR_CMD_INTERNAL') s.log.error({ err }, `request failed , url[${req.url.slice(0, 128)}] ${errorText(err)}`);
    note(req, { verdict: 'refused', error: e.code });
    void reply.code(e.http).send(e.toJSON());
  });

  app.setNotFoundHandler((req) => {
    throw new IbpError('IBP_ERR_CMD_ROUTE', { method: req.method, url: req.url.slice(0, 128) });
  });

  app.get('/v1/status', async () => status(s));

  app.post('/v1/exec', async (req) => {
    const body = req.body as { cmd?: unknown; user?: unknown } | undefined;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new IbpError('IBP_ERR_CODEC_JSON', { detail: 'expected an object {"cmd": "..."}' });
    for (const k of Object.keys(body)) if (k !== 'cmd' && k !== 'user') throw new IbpError('IBP_ERR_CODEC_JSON', { detail: `unknown key "${k.slice(0, 64)}"` });
    if (typeof body.cmd !== 'string') throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: '"cmd" must be a string' });
    note(req, { cmd: body.cmd.slice(0, MAX_COMMAND_LENGTH) });
    if (body.user !== undefined) {
      if (typeof body.user !== 'string') throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: '"user" must be a string' });
      if (body.user !== s.user) throw new IbpError('IBP_ERR_CMD_DENIED', { detail: `this agent runs as ${s.user}, not ${body.user.slice(0, 64)}` });
    }
    const cmd = auditCommand(body.cmd, s.policy);
    note(req, { cmd: cmd.line });
    const result = await s.runner.run(cmd.argv, { ...s.exec, cwd: s.sandbox.root, home: s.home, program: cmd.program });
    note(req, { verdict: 'ran', code: result.code, signal: result.signal, timedOut: result.timedOut, bytes: result.stdout.length + result.stderr.length });
    return { cmd: cmd.line, ...result };
  });

  app.get('/v1/files', async () => ({ files: s.sandbox.list() }));

  app.put('/v1/files/:name', async (req) => {
    const { name } = req.params as { name: string };
    note(req, { file: name.slice(0, 300) });
    if (!Buffer.isBuffer(req.body)) throw new IbpError('IBP_ERR_CODEC_JSON', { detail: 'put sends the file as Content-Type application/octet-stream' });
    let stored;
    try {
      stored = s.sandbox.put(name, req.body);
    } catch (e) {
      if (isIbpError(e)) throw e;
      throw new IbpError('IBP_ERR_CMD_FILE_REFUSED', { name: JSON.stringify(name), detail: (e as Error).message });
    }
    note(req, { verdict: 'stored', bytes: stored.size });
    return stored;
  });

  app.get('/v1/files/:name', async (req, reply) => {
    const { name } = req.params as { name: string };
    note(req, { file: name.slice(0, 300) });
    const f = s.sandbox.get(name);
    note(req, { verdict: 'sent', bytes: f.size });
    return reply.header('content-type', 'application/octet-stream').header('x-ibp-sha256', f.sha256).send(f.data);
  });

  return app;
}

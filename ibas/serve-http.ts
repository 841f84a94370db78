/**
 * The HTTP adapter on the transaction port: a connection whose first byte is not the binary
 * magic is handed to Node's own http.Server (`emit('connection', socket)`, no hand-written
 * parser), so curl, wrk and any HTTP client can call transactions:
 *
 *   POST /ibp/<app>      body = request bytes   →   body = response bytes
 *
 * Request headers (optional): `X-Ibp-Client-Node`, `X-Ibp-Journal`.
 * Response headers: `X-Ibp-Rc` (wire result code, §6.4), `X-Ibp-Result` (its name),
 * `X-Ibp-App-Rc`, `X-Ibp-Load` (`working/total`), `X-Ibp-Message` on failure.
 * Status: 200 OK · 422 the app returned non-zero (its response is the body) · 404 unknown app or
 * path · 403 invalid app · 405 not POST · 413 body over comm.max_frame_size · 503 stopping / no
 * config space · 500 app could not be loaded, crashed, or an internal error. Attached files are
 * not carried over HTTP (use the binary protocol).
 */
import http from 'node:http';
import type net from 'node:net';
import { IbpError, errorText } from '../lib/errors.js';
import { RC, resultName, resultOf } from '../lib/protocol/result-codes.js';
import type { ConnectionContext, ServedConnection } from './serve-binary.js';
import type { TxOutcome } from './transaction.js';

const STATUS: Partial<Record<number, number>> = {
  [RC.OK]: 200,
  [RC.APP_FAILED]: 422,
  [RC.APP_UNKNOWN]: 404,
  [RC.APP_INVALID]: 403,
  [RC.PROTO_TOO_LARGE]: 413,
  [RC.PROTO_FRAME]: 400,
  [RC.POOL_STOPPING]: 503,
  [RC.POOL_NO_SPACE]: 503,
  [RC.APP_SUSPENDED]: 503,
};

const APP_PATH = /^\/ibp\/([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\/?(?:\?.*)?$/;

function headerText(s: string): string {
  // header values: printable latin1, no CR/LF
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
}

/** One http.Server per worker; connections are fed to it one at a time. */
export class HttpAdapter {
  readonly server: http.Server;
  #ctx: ConnectionContext | undefined;
  #inFlight = 0;

  constructor(maxHeaderSize = 16 * 1024) {
    this.server = http.createServer({ maxHeaderSize, requestTimeout: 0, keepAlive: true }, (req, res) => this.#handle(req, res));
    this.server.on('clientError', (err, socket) => {
      this.#ctx?.countError();
      this.#ctx?.log.warn({ err: err.message }, `http protocol error , reason[${err.message}] , connection closed`);
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    });
  }

  serve(socket: net.Socket, first: Buffer, ctx: ConnectionContext): ServedConnection {
    this.#ctx = ctx;
    this.server.keepAliveTimeout = ctx.idleTimeoutMs;
    this.server.headersTimeout = Math.min(ctx.idleTimeoutMs, 60_000);
    const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.pause();
    if (first.length > 0) socket.unshift(first);
    this.server.emit('connection', socket);
    socket.resume();
    let closeAfter = false;
    const requestClose = (): void => {
      closeAfter = true;
      if (this.#inFlight === 0) socket.end();
    };
    socket.on('ibp:answered', () => {
      if (closeAfter || ctx.mustClose()) socket.end();
    });
    return { done, requestClose };
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const ctx = this.#ctx!;
    const startNs = process.hrtime.bigint();
    const m = APP_PATH.exec(req.url ?? '');
    if (!m) return this.#plain(res, 404, `no such path ${JSON.stringify(req.url)}: POST /ibp/<app>`);
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return this.#plain(res, 405, `${req.method} is not allowed: POST /ibp/<app>`);
    }
    const app = m[1]!;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > ctx.limits.maxFrame) return this.#tooLarge(req, res, declared);
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    this.#inFlight++;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > ctx.limits.maxFrame) {
        failed = true;
        this.#inFlight--;
        this.#tooLarge(req, res, size);
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => {
      if (!failed) this.#inFlight--;
      failed = true;
    });
    req.on('end', () => {
      if (failed) return;
      this.#inFlight--;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const receivedNs = process.hrtime.bigint();
      const clientNode = headerText(String(req.headers['x-ibp-client-node'] ?? '')).slice(0, 64);
      const journal = headerText(String(req.headers['x-ibp-journal'] ?? '')).slice(0, 64);
      const socket = req.socket;
      const outcome = ctx.runner.run({ app, clientNode, clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0, journal, request: body, files: [] }, 'KEEPALIVE');
      const sendNs = process.hrtime.bigint();
      this.#answer(res, outcome, () => {
        ctx.txLog.record({
          journal, app, clientNode, clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0,
          rc: outcome.rc, appRc: outcome.appRc, message: outcome.message, via: 'http',
          receiveUs: Number((receivedNs - startNs) / 1000n), appUs: outcome.appUs, sendUs: Number((process.hrtime.bigint() - sendNs) / 1000n),
        });
        socket.emit('ibp:answered');
      });
    });
  }

  #answer(res: http.ServerResponse, o: TxOutcome, done: () => void): void {
    const ctx = this.#ctx!;
    const load = ctx.load();
    const status = STATUS[o.rc] ?? 500;
    const body = o.rc === RC.OK || o.body.length > 0 ? o.body : Buffer.from(`${o.message}\n`);
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': o.rc === RC.OK || o.body.length > 0 ? 'application/octet-stream' : 'text/plain; charset=utf-8',
      'Content-Length': body.length,
      'X-Ibp-Rc': String(o.rc),
      'X-Ibp-Result': resultName(o.rc),
      'X-Ibp-App-Rc': String(o.appRc),
      'X-Ibp-Load': `${load.working}/${load.total}`,
    };
    if (o.message) headers['X-Ibp-Message'] = headerText(o.message);
    if (ctx.mustClose()) headers.Connection = 'close';
    res.writeHead(status, headers);
    res.end(body, done);
  }

  #plain(res: http.ServerResponse, status: number, text: string): void {
    const ctx = this.#ctx!;
    const load = ctx.load();
    const body = Buffer.from(`${text}\n`);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, 'X-Ibp-Load': `${load.working}/${load.total}` });
    res.end(body);
  }

  #tooLarge(req: http.IncomingMessage, res: http.ServerResponse, size: number): void {
    const ctx = this.#ctx!;
    const e = new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size, limit: ctx.limits.maxFrame });
    ctx.countError();
    ctx.log.warn({ err: errorText(e) }, `http request refused , reason[${errorText(e)}] , connection closed`);
    res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', 'X-Ibp-Rc': String(resultOf(e)), 'X-Ibp-Result': resultName(resultOf(e)) });
    res.end(`${e.message}\n`, () => req.socket.destroy());
  }
}

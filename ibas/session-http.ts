/**
 * The HTTP adapter on the transaction port, as a sans-IO session: a connection whose first byte is
 * not the binary magic is parsed with http-parser-js (no hand-written parser), so curl, wrk and any
 * HTTP client can call transactions:
 *
 *   POST /ibp/<app>      body = request bytes   →   body = response bytes
 *
 * Request headers (optional): `X-Ibp-Client-Node`, `X-Ibp-Journal`.
 * Response headers: `X-Ibp-Rc` (wire result code, §6.4), `X-Ibp-Result` (its name),
 * `X-Ibp-App-Rc`, `X-Ibp-Load` (`working/total`), `X-Ibp-Message` on failure.
 * Status: 200 OK · 422 the app returned non-zero (its response is the body) · 404 unknown app or
 * path · 403 invalid app · 405 not POST · 413 body over comm.max_frame_size (connection closed) ·
 * 503 stopping / no config space · 500 app could not be loaded, crashed, or an internal error ·
 * 400 anything the parser refuses (connection closed) · 408 a deadline expired before an answer.
 * Keep-alive as the request asks (HTTP/1.1 by default); `Connection: close` when the worker is
 * leaving. Pipelined requests are answered in order. Attached files are not carried over HTTP
 * (use the binary protocol).
 *
 * Send-ahead: an app that sends its response ahead has its full HTTP response queued and flushed
 * through the driver at once; when the app returns, nothing more is sent for that request (the
 * transaction log line says sent_ahead with the final result).
 */
import { STATUS_CODES } from 'node:http';
import httpParser from 'http-parser-js';
import { IbpError, errorText } from '../lib/errors.js';
import { httpRefusal } from '../lib/protocol/tx-security.js';
import { RC, resultName, resultOf } from '../lib/protocol/result-codes.js';
import type { InputState, Phase } from './deadlines.js';
import type { ConnectionContext, FlushNow, Peer, Session } from './session.js';
import type { TxOutcome } from './transaction.js';

const { HTTPParser } = httpParser;
type Parser = InstanceType<typeof HTTPParser>;

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
  [RC.TX_UNPROTECTED]: 403,
};

const APP_PATH = /^\/ibp\/([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\/?(?:\?.*)?$/;
const POST = HTTPParser.methods.indexOf('POST');
const HEAD = HTTPParser.methods.indexOf('HEAD');

/**
 * Header bytes are fed to the parser in slices of this size: http-parser-js counts a header's size
 * per execute() call, so a slice bounds how far pipelined requests before it can inflate the count.
 * A header block up to HEADER_SLICE bytes is always accepted, one over 2 × HEADER_SLICE never.
 */
const HEADER_SLICE = 16 * 1024;

/** Thrown from a parser callback to stop parsing (the connection closes). */
const STOP = Symbol('stop parsing');

function headerText(s: string): string {
  // header values: printable latin1, no CR/LF
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
}

interface Message {
  method: number;
  url: string;
  app: string | undefined;
  /** Answer without running anything (bad path or method). */
  refusal: { status: number; text: string; allow?: boolean } | undefined;
  clientNode: string;
  journal: string;
  keepAlive: boolean;
  body: Buffer[];
  size: number;
  startNs: bigint;
}

/** Status line and fixed headers of the answers with a body, no message and app rc 0, by rc (the server's own codes: a few). */
const ANSWER_LEADS = new Map<number, string>();

export class HttpSession implements Session {
  readonly out: Buffer[] = [];
  readonly afterSend: (() => void)[] = [];
  closing = false;
  completed = 0;
  readonly #ctx: ConnectionContext;
  readonly #peer: Peer;
  readonly #flushNow: FlushNow | undefined;
  readonly #parser: Parser;
  #input: InputState = 'IDLE';
  #msg: Message | undefined;
  #firstByteNs = 0n;

  constructor(ctx: ConnectionContext, peer: Peer, flushNow?: FlushNow) {
    this.#ctx = ctx;
    this.#peer = peer;
    this.#flushNow = flushNow;
    const p = new HTTPParser(HTTPParser.REQUEST);
    p.maxHeaderSize = 2 * HEADER_SLICE;
    p[HTTPParser.kOnHeadersComplete] = (info) => this.#onHeaders(info);
    p[HTTPParser.kOnBody] = (chunk, offset, length) => this.#onBody(chunk, offset, length);
    p[HTTPParser.kOnMessageComplete] = () => this.#onComplete();
    this.#parser = p;
  }

  input(): InputState {
    return this.#input;
  }

  push(chunk: Buffer): void {
    if (this.closing) return;
    if (this.#input === 'IDLE') {
      this.#input = 'HEADER';
      this.#firstByteNs = process.hrtime.bigint();
    }
    try {
      for (let off = 0; off < chunk.length && !this.closing; off += HEADER_SLICE) {
        const r = this.#parser.execute(off === 0 && chunk.length <= HEADER_SLICE ? chunk : chunk.subarray(off, off + HEADER_SLICE));
        if (r instanceof Error) {
          this.#badRequest(r.message);
          return;
        }
      }
    } catch (e) {
      if (e === STOP) return;
      this.#badRequest(errorText(e));
    }
  }

  end(how: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.#input !== 'IDLE') {
      this.#ctx.countError();
      this.#ctx.log.warn({ client: this.#client() }, `http request incomplete , client[${this.#client()}] (${how})`);
    }
  }

  leave(): void {
    // between requests nothing is owed: the connection just closes
    this.closing = true;
  }

  expire(phase: Phase, ms: number, answerInFlight: boolean): void {
    if (this.closing) return;
    this.closing = true;
    if (answerInFlight) return;
    const e = new IbpError('IBP_ERR_PROTO_DEADLINE', { phase, ms });
    this.#respond(408, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Ibp-Rc': String(resultOf(e)), 'X-Ibp-Result': resultName(resultOf(e)) }, Buffer.from(`${e.message}\n`), false);
  }

  closed(): void {
    this.closing = true;
  }

  #client(): string {
    return `${this.#peer.ip}:${this.#peer.port}`;
  }

  #onHeaders(info: { method: number; url: string; headers: string[]; upgrade: boolean; shouldKeepAlive: boolean }): void {
    this.#input = 'REQUEST';
    if (info.upgrade) {
      this.#badRequest('protocol upgrade (CONNECT / Upgrade) is not served on the transaction port');
      throw STOP;
    }
    let clientNode = '';
    let journal = '';
    let declared = -1;
    let expectContinue = false;
    const h = info.headers;
    for (let i = 0; i + 1 < h.length; i += 2) {
      const name = h[i]!.toLowerCase();
      if (name === 'x-ibp-client-node') clientNode = headerText(h[i + 1]!).slice(0, 64);
      else if (name === 'x-ibp-journal') journal = headerText(h[i + 1]!).slice(0, 64);
      else if (name === 'expect' && h[i + 1]!.trim().toLowerCase() === '100-continue') expectContinue = true;
      else if (name === 'content-length') {
        const v = h[i + 1]!.trim();
        // http-parser-js takes any value: a length that is not a number (or disagrees with another) is refused here
        if (!/^\d{1,15}$/.test(v) || (declared >= 0 && Number(v) !== declared)) {
          this.#badRequest(`Content-Length ${JSON.stringify(v.slice(0, 40))} is not one decimal length`);
          throw STOP;
        }
        declared = Number(v);
      }
    }
    declared = Math.max(declared, 0);
    const m = APP_PATH.exec(info.url);
    let refusal: Message['refusal'];
    if (!m) refusal = { status: 404, text: `no such path ${JSON.stringify(info.url)}: POST /ibp/<app>` };
    else if (info.method !== POST) refusal = { status: 405, text: `${HTTPParser.methods[info.method] ?? 'this method'} is not allowed: POST /ibp/<app>`, allow: true };
    this.#msg = {
      method: info.method, url: info.url, app: m?.[1], refusal, clientNode, journal,
      keepAlive: info.shouldKeepAlive, body: [], size: 0, startNs: this.#firstByteNs || process.hrtime.bigint(),
    };
    if (declared > this.#ctx.limits.maxFrame) {
      this.#tooLarge(declared);
      throw STOP;
    }
    // curl asks before sending a body over 1 KiB: answer at once instead of letting it wait
    if (expectContinue && declared > 0) this.out.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1'));
  }

  #onBody(chunk: Buffer, offset: number, length: number): void {
    const msg = this.#msg!;
    msg.size += length;
    if (msg.size > this.#ctx.limits.maxFrame) {
      this.#tooLarge(msg.size);
      throw STOP;
    }
    // the chunk is this session's own copy of the received bytes: a view is enough
    if (!msg.refusal) msg.body.push(chunk.subarray(offset, offset + length));
  }

  #onComplete(): void {
    const msg = this.#msg;
    this.#msg = undefined;
    this.#input = 'IDLE';
    this.#firstByteNs = 0n;
    this.completed++;
    if (!msg) return;
    // the last request a keep-alive connection may carry closes it (comm.keepalive_max_requests):
    // the worker goes back to the accept queue, so W busy keep-alive clients cannot hold a pool
    // of W while other connections wait there
    const max = this.#ctx.keepaliveMaxRequests;
    const keepAlive = msg.keepAlive && !this.#ctx.mustClose() && (max === 0 || this.completed < max);
    if (msg.refusal) {
      const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
      if (msg.refusal.allow) headers.Allow = 'POST';
      this.#respond(msg.refusal.status, headers, Buffer.from(`${msg.refusal.text}\n`), keepAlive, msg.method === HEAD);
    } else {
      this.#transaction(msg, keepAlive);
    }
    if (!keepAlive) {
      this.closing = true;
      throw STOP;
    }
  }

  #transaction(msg: Message, keepAlive: boolean): void {
    const ctx = this.#ctx;
    const peer = this.#peer;
    const app = msg.app!;
    const body = msg.body.length === 1 ? msg.body[0]! : Buffer.concat(msg.body);
    const receivedNs = process.hrtime.bigint();
    let sendNs = 0n;
    let sendUs = -1;
    // HTTP cannot sign: when ibas.conf requires signing, only the apps of security.http_unsigned_allow are served
    const refusal = ctx.gate ? httpRefusal(ctx.gate.policy, app) : undefined;
    if (refusal) ctx.log.warn({ client: this.#client(), app, err: errorText(refusal) }, `transaction refused , client[${this.#client()}] node[${msg.clientNode}] app[${app}] journal[${msg.journal}] reason[${errorText(refusal)}]`);
    const outcome = refusal ? ctx.runner.refused(refusal) : ctx.runner.run({
      app, clientNode: msg.clientNode, clientIp: peer.ip, clientPort: peer.port, journal: msg.journal, request: body, files: [],
      onSendAhead: this.#flushNow ? (early) => {
        sendNs = process.hrtime.bigint();
        this.#answer(early, keepAlive);
        if (!this.#flushNow!()) {
          this.closing = true;
          this.#ctx.log.warn({ client: this.#client(), app }, `send-ahead answer not delivered , client[${this.#client()}] app[${app}] , connection closed`);
        }
        sendUs = Number((process.hrtime.bigint() - sendNs) / 1000n);
      } : undefined,
    }, 'KEEPALIVE');
    if (!outcome.sentAhead) {
      sendNs = process.hrtime.bigint();
      this.#answer(outcome, keepAlive);
    }
    this.afterSend.push(() => ctx.txLog.record({
      journal: msg.journal, app, clientNode: msg.clientNode, clientIp: peer.ip, clientPort: peer.port,
      rc: outcome.rc, appRc: outcome.appRc, message: outcome.message, via: 'http', sentAhead: outcome.sentAhead,
      receiveUs: Number((receivedNs - msg.startNs) / 1000n), appUs: outcome.appUs, sendUs: sendUs >= 0 ? sendUs : Number((process.hrtime.bigint() - sendNs) / 1000n),
    }));
  }

  #answer(o: TxOutcome, keepAlive: boolean): void {
    const status = STATUS[o.rc] ?? 500;
    const plain = o.rc !== RC.OK && o.body.length === 0;
    const body = plain ? Buffer.from(`${o.message}\n`) : o.body;
    if (!plain && !o.message && o.appRc === 0) {
      // the usual answer (a body, no message): its status line and fixed headers are kept as text
      let lead = ANSWER_LEADS.get(o.rc);
      if (lead === undefined) {
        lead = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Type: application/octet-stream\r\nX-Ibp-Rc: ${o.rc}\r\nX-Ibp-Result: ${resultName(o.rc)}\r\nX-Ibp-App-Rc: 0\r\n`;
        ANSWER_LEADS.set(o.rc, lead);
      }
      this.#respondWith(lead, body, keepAlive);
      return;
    }
    const headers: Record<string, string> = {
      'Content-Type': plain ? 'text/plain; charset=utf-8' : 'application/octet-stream',
      'X-Ibp-Rc': String(o.rc),
      'X-Ibp-Result': resultName(o.rc),
      'X-Ibp-App-Rc': String(o.appRc),
    };
    if (o.message) headers['X-Ibp-Message'] = headerText(o.message);
    this.#respond(status, headers, body, keepAlive);
  }

  /** One complete response (status line, headers, body) into `out`. */
  #respond(status: number, headers: Record<string, string>, body: Buffer, keepAlive: boolean, headOnly = false): void {
    let lead = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (const [k, v] of Object.entries(headers)) lead += `${k}: ${v}\r\n`;
    this.#respondWith(lead, body, keepAlive, headOnly);
  }

  /** `lead`: the status line and the headers before the load, length and connection ones. */
  #respondWith(lead: string, body: Buffer, keepAlive: boolean, headOnly = false): void {
    const load = this.#ctx.load();
    const head = `${lead}X-Ibp-Load: ${load.working}/${load.total}\r\nContent-Length: ${body.length}\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`;
    const h = Buffer.from(head, 'latin1');
    if (headOnly) {
      // a HEAD request: the headers tell the length, no body follows
      this.out.push(h);
      return;
    }
    this.out.push(body.length > 0 && body.length <= 64 * 1024 ? Buffer.concat([h, body], h.length + body.length) : h);
    if (body.length > 64 * 1024) this.out.push(body);
  }

  #tooLarge(size: number): void {
    const e = new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size, limit: this.#ctx.limits.maxFrame });
    this.#ctx.countError();
    this.#ctx.log.warn({ err: errorText(e) }, `http request refused , client[${this.#client()}] reason[${errorText(e)}] , connection closed`);
    this.#respond(413, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Ibp-Rc': String(resultOf(e)), 'X-Ibp-Result': resultName(resultOf(e)) }, Buffer.from(`${e.message}\n`), false);
    this.closing = true;
  }

  #badRequest(reason: string): void {
    if (this.closing) return;
    this.#ctx.countError();
    this.#ctx.log.warn({ err: reason }, `http protocol error , client[${this.#client()}] reason[${reason}] , connection closed`);
    this.#respond(400, { 'Content-Type': 'text/plain; charset=utf-8' }, Buffer.alloc(0), false);
    this.closing = true;
  }
}

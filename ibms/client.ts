/**
 * A small REST client of ibms (node:http, no pooling): JSON bodies compressed with lz4 above
 * `minCompressSize`, lz4 answers accepted, errors turned back into the IbpError the daemon threw
 * (same code, same message, so the CLI exits with that code's exit status).
 */
import http from 'node:http';
import { ERRORS, IbpError, type ErrorCode } from '../lib/errors.js';
import { decodeJsonBody, encodeJsonBody } from '../lib/codec/json-body.js';
import { LZ4_ENCODING } from '../lib/codec/lz4.js';

export interface ClientOptions {
  ip: string;
  port: number;
  credential: string;
  minCompressSize: number;
  /** Whole-request deadline. */
  timeoutMs?: number;
  /** Largest answer accepted (after decompression). */
  maxAnswer?: number;
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class IbmsClient {
  readonly #o: ClientOptions;
  readonly url: string;

  constructor(opts: ClientOptions) {
    this.#o = opts;
    this.url = `http://${opts.ip}:${opts.port}`;
  }

  /** Send a request; answers the raw status, headers and body (not decoded). */
  raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
    const enc = body === undefined ? undefined : encodeJsonBody(body, { minCompressSize: this.#o.minCompressSize, peerAcceptsLz4: true });
    const h: Record<string, string | number> = {
      authorization: `Bearer ${this.#o.credential}`,
      'accept-encoding': LZ4_ENCODING,
      ...headers,
    };
    if (enc) {
      h['content-type'] = 'application/json';
      h['content-length'] = enc.body.length;
      if (enc.encoding) h['content-encoding'] = enc.encoding;
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: this.#o.ip, port: this.#o.port, method, path, headers: h, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (e) => reject(this.#unreachable(e)));
      });
      req.setTimeout(this.#o.timeoutMs ?? 60_000, () => req.destroy(new Error(`no answer within ${this.#o.timeoutMs ?? 60_000} ms`)));
      req.on('error', (e) => reject(this.#unreachable(e)));
      req.end(enc?.body);
    });
  }

  #unreachable(e: Error): IbpError {
    return new IbpError('IBP_ERR_REG_UNREACHABLE', { url: this.url, detail: (e as NodeJS.ErrnoException).code ?? e.message }, { cause: e });
  }

  /** Send a request and decode the JSON answer; an error answer throws the daemon's IbpError. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body);
    let value: unknown;
    try {
      value = decodeJsonBody(res.body, res.headers['content-encoding'], this.#o.maxAnswer ?? 1024 * 1024 * 1024);
    } catch (e) {
      if (res.status >= 400) throw new IbpError('IBP_ERR_REG_ANSWER', { status: res.status, detail: res.body.toString('utf8', 0, 200) });
      throw e;
    }
    if (res.status >= 400) throw answerError(res.status, value);
    return value as T;
  }
}

/** The IbpError an error answer carries (`{code, message}`), or IBP_ERR_REG_ANSWER. */
export function answerError(status: number, value: unknown): IbpError {
  const v = value as { code?: unknown; message?: unknown } | undefined;
  if (v && typeof v.code === 'string' && Object.hasOwn(ERRORS, v.code) && typeof v.message === 'string') {
    const e = new IbpError(v.code as ErrorCode);
    e.message = v.message;
    return e;
  }
  return new IbpError('IBP_ERR_REG_ANSWER', { status, detail: JSON.stringify(value ?? null).slice(0, 200) });
}

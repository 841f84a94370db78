/**
 * A node's side of the ibms REST API (used by ibma and ibas) (docs/ARCHITECTURE.md §4.1), on Node's built-in fetch.
 *
 * Every call carries the node credential (`Authorization: Bearer …`) and `Accept-Encoding: lz4`;
 * bodies are read with a size limit (a hostile or broken registry cannot make the agent buffer
 * without bound) and every failure becomes an IbpError:
 *
 *   IBP_ERR_REG_UNREACHABLE   no answer (refused, reset, timed out)
 *   IBP_ERR_REG_ANSWER        an answer the agent cannot use: HTTP error status, a body over the
 *                             limit, malformed lz4/JSON; `params.status` holds the HTTP status
 *
 * The caller's limit (`maxSize`) bounds a 2xx answer: it is sized for what the caller expects (a
 * package's signed size, a bundle). Any other status is an error answer, read up to
 * {@link ERROR_BODY_MAX} whatever `maxSize` is, so that {@link answerError} can show the
 * registry's own code and message (a 403 to a 100-byte package must still carry its reason).
 */
import { IbpError, isIbpError } from './errors.js';
import { decodeJsonBody } from './codec/json-body.js';
import { LZ4_ENCODING } from './codec/lz4.js';

/** Largest error-answer body read (ibms's `{code, message}` JSON is a few hundred bytes). */
export const ERROR_BODY_MAX = 8 * 1024;

export interface RegistryAddress {
  ip: string;
  port: number;
  credential: string;
}

export interface RegistryAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Whole-call deadline (connect, headers and body). */
  timeoutMs: number;
  /** Largest body accepted in a 2xx answer (an error answer's body: {@link ERROR_BODY_MAX}). */
  maxSize: number;
}

export class RegistryClient {
  readonly base: string;
  readonly #auth: string;

  constructor(addr: RegistryAddress) {
    this.base = `http://${addr.ip}:${addr.port}/v1`;
    this.#auth = `Bearer ${addr.credential}`;
  }

  /** GET `path` (below /v1); resolves with any HTTP status, rejects only when nothing usable came back. */
  async get(path: string, opts: CallOptions): Promise<RegistryAnswer> {
    return this.#call('GET', path, undefined, opts);
  }

  /** POST a small JSON value. */
  async post(path: string, value: unknown, opts: CallOptions): Promise<RegistryAnswer> {
    return this.#call('POST', path, Buffer.from(JSON.stringify(value)), opts);
  }

  async #call(method: string, path: string, body: Buffer | undefined, opts: CallOptions): Promise<RegistryAnswer> {
    const url = `${this.base}${path}`;
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        signal,
        headers: {
          authorization: this.#auth,
          'accept-encoding': LZ4_ENCODING,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body,
      });
    } catch (e) {
      throw unreachable(url, e, opts.signal);
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(res, res.ok ? opts.maxSize : ERROR_BODY_MAX, url);
    } catch (e) {
      if (isIbpError(e) || opts.signal?.aborted) throw unreachable(url, e, opts.signal);
      throw new IbpError('IBP_ERR_REG_ANSWER', { status: res.status, detail: `${url}: answer cut short (${(e as Error).message})` }, { cause: e });
    }
    return { status: res.status, headers: res.headers, body: bytes };
  }
}

/** An error answer (status ≥ 300) as IBP_ERR_REG_ANSWER carrying the registry's own code and message. */
export function answerError(ans: RegistryAnswer, what: string): IbpError {
  let detail = `${what}: HTTP ${ans.status}`;
  try {
    const v = decodeJsonBody(ans.body, ans.headers.get('content-encoding') ?? undefined, ERROR_BODY_MAX) as { code?: unknown; message?: unknown } | undefined;
    if (v && typeof v === 'object' && typeof v.message === 'string') detail = `${what}: ${String(v.code ?? '')} ${v.message}`.trim();
  } catch {
    // not a JSON error body: the status says enough
  }
  return new IbpError('IBP_ERR_REG_ANSWER', { status: ans.status, detail });
}

function unreachable(url: string, e: unknown, caller?: AbortSignal): Error {
  if (caller?.aborted) return caller.reason instanceof Error ? caller.reason : new Error('aborted');
  if (isIbpError(e)) return e;
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const detail = err.name === 'TimeoutError' ? 'no answer in time' : err.cause?.code ?? err.cause?.message ?? err.message;
  return new IbpError('IBP_ERR_REG_UNREACHABLE', { url: url.split('?')[0], detail }, { cause: e });
}

/** Read a response body, refusing (and cancelling) it once it passes `max` bytes. */
async function readLimited(res: Response, max: number, url: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new IbpError('IBP_ERR_REG_ANSWER', { status: res.status, detail: `${url}: ${what(res)}body of ${declared} bytes is over the limit of ${max}` });
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw new IbpError('IBP_ERR_REG_ANSWER', { status: res.status, detail: `${url}: ${what(res)}body over the limit of ${max} bytes` });
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  if (Number.isFinite(declared) && declared !== total) {
    throw new IbpError('IBP_ERR_REG_ANSWER', { status: res.status, detail: `${url}: truncated body (${total} of ${declared} bytes)` });
  }
  return Buffer.concat(chunks, total);
}

/** How a refused body is named: the status of an error answer is the news, not the size. */
function what(res: Response): string {
  return res.ok ? '' : `HTTP ${res.status} answer, its `;
}

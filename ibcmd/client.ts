/**
 * Talking to a running ibcmd agent (what `ibcmd --ip --port -a execmd|putfile|getfile` and the
 * cluster scripts use). A refusal by the agent comes back as the IbpError it raised there, with
 * the agent's message; an agent that does not answer is IBP_ERR_CMD_UNREACHABLE.
 */
import crypto from 'node:crypto';
import { ERRORS, IbpError, type ErrorCode } from '../lib/errors.js';
import { checkPlainFileName } from '../lib/home.js';
import type { ExecResult } from './exec.js';
import type { AgentStatus } from './server.js';
import type { ListedFile, StoredFile } from './transfer.js';

export interface ClientOptions {
  ip: string;
  port: number;
  secret: string;
  /** Deadline of one request, ms (a command may run that long). */
  timeoutMs?: number;
}

export type ExecAnswer = ExecResult & { cmd: string };

/** Rebuild the agent's error on this side, keeping its message. */
export function remoteError(status: number, body: unknown): IbpError {
  const b = body as { code?: unknown; message?: unknown } | undefined;
  const msg = typeof b?.message === 'string' ? b.message : `HTTP ${status}`;
  if (typeof b?.code === 'string' && Object.hasOwn(ERRORS, b.code)) {
    const e = new IbpError(b.code as ErrorCode);
    e.message = msg;
    return e;
  }
  return new IbpError('IBP_ERR_CMD_ANSWER', { status, detail: msg });
}

export class IbcmdClient {
  readonly url: string;
  readonly #secret: string;
  readonly #timeoutMs: number;

  constructor(opts: ClientOptions) {
    this.url = `http://${opts.ip}:${opts.port}`;
    this.#secret = opts.secret;
    this.#timeoutMs = opts.timeoutMs ?? 600_000;
  }

  async #request(method: string, path: string, body?: { json?: unknown; bytes?: Buffer }): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#secret}` };
    let payload: string | Buffer | undefined;
    if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body?.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      payload = body.bytes;
    }
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const detail = (e as Error).name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : cause?.code ?? cause?.message ?? (e as Error).message;
      throw new IbpError('IBP_ERR_CMD_UNREACHABLE', { url: this.url, detail }, { cause: e });
    }
    if (!res.ok) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(await res.text());
      } catch {
        parsed = undefined;
      }
      throw remoteError(res.status, parsed);
    }
    return res;
  }

  async status(): Promise<AgentStatus> {
    return (await (await this.#request('GET', '/v1/status')).json()) as AgentStatus;
  }

  async exec(cmd: string, user?: string): Promise<ExecAnswer> {
    return (await (await this.#request('POST', '/v1/exec', { json: user === undefined ? { cmd } : { cmd, user } })).json()) as ExecAnswer;
  }

  async list(): Promise<ListedFile[]> {
    return ((await (await this.#request('GET', '/v1/files')).json()) as { files: ListedFile[] }).files;
  }

  /** The name is checked here too (as the agent does), so a URL can never normalise it away. */
  async put(name: string, data: Buffer): Promise<StoredFile> {
    checkPlainFileName(name);
    const stored = (await (await this.#request('PUT', `/v1/files/${encodeURIComponent(name)}`, { bytes: data })).json()) as StoredFile;
    const mine = crypto.createHash('sha256').update(data).digest('hex');
    if (stored.sha256 !== mine) throw new IbpError('IBP_ERR_CMD_ANSWER', { status: 200, detail: `the agent stored ${name} with sha256 ${stored.sha256}, sent ${mine}` });
    return stored;
  }

  async get(name: string): Promise<{ data: Buffer; sha256: string }> {
    checkPlainFileName(name);
    const res = await this.#request('GET', `/v1/files/${encodeURIComponent(name)}`);
    const data = Buffer.from(await res.arrayBuffer());
    const sha256 = crypto.createHash('sha256').update(data).digest('hex');
    const announced = res.headers.get('x-ibp-sha256');
    if (announced !== sha256) throw new IbpError('IBP_ERR_CMD_ANSWER', { status: res.status, detail: `${name} arrived with sha256 ${sha256}, the agent announced ${announced}` });
    return { data, sha256 };
  }
}

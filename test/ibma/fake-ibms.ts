/**
 * A small stand-in for ibms's agent endpoints, on loopback, for the tests of what the agent does
 * with answers a real ibms never gives: truncated or corrupt bodies, bundles failing the schema,
 * another node's bundle, disagreeing headers, oversized bodies, corrupted packages.
 *
 * Like ibms it signs: every bundle it serves carries its package-signing key and a signed manifest
 * per package (lib/package-signing.ts), unless `signing` says otherwise ('unsigned': no key and no
 * manifests; 'foreign': signed by a key other than the one it announces).
 *
 * It honours the watch contract (answer at once when epoch/index differ, else hold until the
 * bundle changes or `wait` passes) so the agent's good path runs exactly as against ibms.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { encodeJsonBody } from '../../lib/codec/json-body.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { PACKAGE_ABI_VERSION, PackageSigner } from '../../lib/package-signing.js';

export type AnswerMode =
  | 'good'
  | 'truncated-lz4' // Content-Encoding lz4, block cut in the middle
  | 'bad-json' // a JSON text cut short
  | 'schema' // valid JSON that is not a NodeBundle
  | 'proto' // prototype poisoning
  | 'other-node' // a valid bundle of another node
  | 'header-mismatch' // X-Ibp-Index disagrees with the body
  | 'cut-connection' // Content-Length announced, half sent, socket destroyed
  | 'oversized' // Content-Length far over the agent's max_bundle_size
  | 'status-500';

export interface FakePackage {
  body: Buffer;
  /** X-Ibp-Sha256 to send (default: the body's real sha256). */
  header?: string;
  /** 403 instead of the bytes. */
  forbidden?: boolean;
  /** Wait this long before answering (a slow download). */
  delayMs?: number;
}

export interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  auth: string | undefined;
  acceptEncoding: string | undefined;
  body?: unknown;
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

export class FakeIbms {
  readonly ip: string;
  port = 0;
  mode: AnswerMode = 'good';
  /** Its package-signing key (agents pin its public key on first use). */
  readonly signer = new PackageSigner(crypto.generateKeyPairSync('ed25519').privateKey);
  /** How bundles are signed (see the file comment). */
  signing: 'signed' | 'unsigned' | 'foreign' = 'signed';
  readonly #foreign = new PackageSigner(crypto.generateKeyPairSync('ed25519').privateKey);
  bundle: NodeBundle;
  readonly packages = new Map<string, FakePackage>();
  /** What `GET /v1/agent/node_keys/:node` answers (the `keys` list), by node; 404 when absent. */
  readonly nodeKeys = new Map<string, unknown[]>();
  readonly seen: Seen[] = [];
  /** When set, any other bearer credential gets 401 (as ibms answers). */
  credential: string | undefined;
  /** Hostile answers sent so far, by mode. */
  readonly hostile = new Map<AnswerMode, number>();
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  #waiters = new Set<() => void>();

  constructor(ip: string, bundle: NodeBundle) {
    this.ip = ip;
    this.bundle = bundle;
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, this.ip, () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.#release();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Publish a new bundle: held watches answer now. */
  setBundle(b: NodeBundle): void {
    this.bundle = b;
    this.#release();
  }

  /** Change how the next answers look; held watches answer now. */
  setMode(m: AnswerMode): void {
    this.mode = m;
    this.#release();
  }

  /** The bundle as served: the key and a signed manifest per package, as `signing` says. */
  signed(b: NodeBundle): NodeBundle {
    if (this.signing === 'unsigned') return b;
    const by = this.signing === 'foreign' ? this.#foreign : this.signer;
    return {
      ...b,
      package_key: this.signer.publicKeyB64,
      apps: b.apps.map((a) => (a.sha256 === '' || a.manifest !== undefined ? a : { ...a, ...by.sign({ abi_version: PACKAGE_ABI_VERSION, app: a.app, bin: a.bin, sha256: a.sha256, size: a.size, time: 1 }) })),
    };
  }

  count(path: string, pred: (s: Seen) => boolean = () => true): number {
    return this.seen.filter((s) => s.path === path && pred(s)).length;
  }

  #release(): void {
    const w = this.#waiters;
    this.#waiters = new Set();
    for (const f of w) f();
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const seen: Seen = { method: req.method ?? '', path: url.pathname, query: url.searchParams, auth: req.headers.authorization, acceptEncoding: req.headers['accept-encoding'] as string | undefined };
    if (chunks.length) {
      try {
        seen.body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        seen.body = Buffer.concat(chunks).toString();
      }
    }
    this.seen.push(seen);
    if (this.credential !== undefined && seen.auth !== `Bearer ${this.credential}`) {
      return json(res, 401, { code: 'IBP_ERR_REG_AUTH', message: 'missing or wrong credential' });
    }
    if (url.pathname === '/v1/agent/config') return this.#config(url.searchParams, req, res);
    if (url.pathname === '/v1/agent/heartbeat') return json(res, 200, { ok: true });
    const keys = /^\/v1\/agent\/node_keys\/([^/]+)$/.exec(url.pathname);
    if (keys) {
      const node = decodeURIComponent(keys[1]!);
      const list = this.nodeKeys.get(node);
      return list ? json(res, 200, { node, keys: list }) : json(res, 404, { code: 'IBP_ERR_REG_NOT_FOUND', message: `no keys of ${node}` });
    }
    const pkg = /^\/v1\/agent\/packages\/([^/]+)$/.exec(url.pathname);
    if (pkg) {
      const p = this.packages.get(decodeURIComponent(pkg[1]!));
      if (!p) return json(res, 404, { code: 'IBP_ERR_REG_NOT_FOUND', message: 'package not found' });
      // ibms's own answer (IbpError IBP_ERR_REG_FORBIDDEN), 100-odd bytes: more than a small package
      if (p.forbidden) return json(res, 403, { code: 'IBP_ERR_REG_FORBIDDEN', message: `node ${this.bundle.this_node} is not entitled to package ${decodeURIComponent(pkg[1]!)} (it serves no project holding an app of it)` });
      if (p.delayMs) await new Promise((r) => setTimeout(r, p.delayMs));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-ibp-sha256': p.header ?? sha256(p.body), 'content-length': p.body.length });
      res.end(p.body);
      return;
    }
    json(res, 404, { code: 'IBP_ERR_REG_NOT_FOUND', message: `no route ${url.pathname}` });
  }

  async #config(q: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const wait = Number(q.get('wait') ?? 0) * 1000;
    const current = q.get('epoch') === this.bundle.epoch && Number(q.get('index')) === this.bundle.version;
    if (this.mode === 'good' && current && wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait);
        function done(): void {
          clearTimeout(timer);
          req.socket.off('close', done); // a kept-alive socket carries many watches
          resolve();
        }
        this.#waiters.add(done);
        req.socket.once('close', done);
      });
      if (res.destroyed) return;
    }
    const mode = this.mode;
    if (mode !== 'good') this.hostile.set(mode, (this.hostile.get(mode) ?? 0) + 1);
    const b = this.signed(this.bundle);
    const headers = { 'x-ibp-index': String(b.version), 'x-ibp-epoch': b.epoch, 'content-type': 'application/json' };
    const enc = encodeJsonBody(b, { minCompressSize: 64, peerAcceptsLz4: true });
    switch (mode) {
      case 'good':
        res.writeHead(200, { ...headers, ...(enc.encoding ? { 'content-encoding': enc.encoding } : {}) });
        res.end(enc.body);
        return;
      case 'truncated-lz4': {
        if (!enc.encoding) throw new Error('fake ibms: bundle too small to compress');
        const cut = enc.body.subarray(0, Math.floor(enc.body.length / 2));
        res.writeHead(200, { ...headers, 'content-encoding': 'lz4', 'content-length': cut.length });
        res.end(cut);
        return;
      }
      case 'bad-json': {
        const text = JSON.stringify(b);
        res.writeHead(200, headers);
        res.end(text.slice(0, Math.floor(text.length / 2)));
        return;
      }
      case 'schema':
        res.writeHead(200, headers);
        res.end(JSON.stringify({ ...b, nodes: 'everything', version: -1 }));
        return;
      case 'proto':
        res.writeHead(200, headers);
        res.end(`{"__proto__":{"polluted":true},"epoch":${JSON.stringify(b.epoch)},"version":${b.version},"this_node":${JSON.stringify(b.this_node)},"nodes":[],"apps":[]}`);
        return;
      case 'other-node': {
        const other = { ...b, this_node: 'SOMEONE_ELSE' };
        res.writeHead(200, headers);
        res.end(JSON.stringify(other));
        return;
      }
      case 'header-mismatch':
        res.writeHead(200, { ...headers, 'x-ibp-index': String(b.version + 7) });
        res.end(JSON.stringify({ ...b, version: b.version + 1 }));
        return;
      case 'cut-connection': {
        const text = Buffer.from(JSON.stringify(b));
        res.writeHead(200, { ...headers, 'content-length': text.length });
        res.write(text.subarray(0, Math.floor(text.length / 2)));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      case 'oversized':
        res.writeHead(200, { ...headers, 'content-length': 512 * 1024 * 1024 });
        res.write(Buffer.alloc(1024, 0x20));
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      case 'status-500':
        json(res, 500, { code: 'IBP_ERR_REG_INVALID', message: 'fake registry failure' });
        return;
    }
  }
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/** The credential the fake of {@link omegaFake} accepts. */
export const OMEGA_CREDENTIAL = 'the-right-credential-0123456789';

/** One node OMEGA whose kv `v` carries the version (what the CLI and life-cycle tests serve). */
export function omegaBundle(version: number): NodeBundle {
  return {
    epoch: 'C1',
    version,
    this_node: 'OMEGA',
    nodes: [{ node: 'OMEGA', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18301 }], kvs: { v: String(version) } }],
    apps: [],
  };
}

/** A fake registry on `ip` serving omegaBundle(1) to OMEGA_CREDENTIAL (not started yet). */
export function omegaFake(ip: string): FakeIbms {
  const fake = new FakeIbms(ip, omegaBundle(1));
  fake.credential = OMEGA_CREDENTIAL;
  return fake;
}

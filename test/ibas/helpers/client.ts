/**
 * A raw protocol client for the ibas tests, built directly on lib/protocol (the real ibac client
 * is another part): one connection, transactions one at a time, plus raw writes for malformed
 * input. Every wait has a deadline.
 */
import net from 'node:net';
import { FrameReader, limitsOf } from '../../../lib/protocol/frame.js';
import { decodePacket, encodePacket, encodePackets, type Load, type Packet } from '../../../lib/protocol/codec.js';

export interface CallResult {
  rc: number;
  appRc: number;
  message: string;
  body: Buffer;
  files: { name: string; data: Buffer }[];
  load: Load;
  preRc: number;
  granted: number;
}

export interface CallOptions {
  files?: { name: string; data: Buffer }[];
  flags?: number;
  journal?: string;
  /** A global transaction id (sets TX_FLAG.GTRID). */
  gtrid?: string;
  clientNode?: string;
  /** Wait for PRE_ANSWER before pushing (IBP's way) instead of pipelining. */
  waitPre?: boolean;
  timeoutMs?: number;
  compressMin?: number;
}

const limits = limitsOf({ maxFrame: 256 * 1024 * 1024, maxFile: 256 * 1024 * 1024, maxFiles: 1024 });

export class TestClient {
  readonly socket: net.Socket;
  readonly #reader = new FrameReader(limits.maxFrame);
  #queue: Packet[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #error: Error | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      try {
        for (const f of this.#reader.push(c)) this.#queue.push(decodePacket(f, limits));
      } catch (e) {
        this.#error = e as Error;
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', (e) => {
      this.#error = e;
      this.#wake();
    });
  }

  static async connect(ip: string, port: number, timeoutMs = 5000): Promise<TestClient> {
    return new TestClient(await connectSocket(ip, port, timeoutMs));
  }


  get closed(): boolean {
    return this.#closed;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** The next packet from the server; rejects on close, error or deadline. */
  async next(timeoutMs = 10_000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.#queue.shift();
      if (p) return p;
      if (this.#error) throw this.#error;
      if (this.#closed) throw new Error('connection closed by the server');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves once the server closed the connection (or the deadline passed: rejects). */
  async waitClosed(timeoutMs = 10_000): Promise<Packet[]> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) {
      if (Date.now() > deadline) throw new Error(`server did not close within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const rest = this.#queue;
    this.#queue = [];
    return rest;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  send(...packets: Packet[]): void {
    this.socket.write(encodePackets(packets));
  }

  async call(app: string, request: Buffer | string, o: CallOptions = {}): Promise<CallResult> {
    const files = o.files ?? [];
    const timeoutMs = o.timeoutMs ?? 15_000;
    const pre: Packet = { type: 'PRE_REQUEST', flags: o.flags ?? 0, fileCount: files.length, timeoutMs: 0, clientNode: o.clientNode ?? 'test_client', app, journal: o.journal ?? '', gtrid: o.gtrid ?? '' };
    const rest: Packet[] = [
      ...files.map((f, index): Packet => ({ type: 'PUSH_FILE', index, name: f.name, data: f.data })),
      { type: 'REQUEST', body: Buffer.isBuffer(request) ? request : Buffer.from(request) },
    ];
    const enc = o.compressMin !== undefined ? { compressMin: o.compressMin } : {};
    let preAnswer: Packet;
    if (o.waitPre) {
      this.socket.write(encodePacket(pre, enc));
      preAnswer = await this.next(timeoutMs);
      this.socket.write(encodePackets(rest, enc));
    } else {
      this.socket.write(encodePackets([pre, ...rest], enc));
      preAnswer = await this.next(timeoutMs);
    }
    if (preAnswer.type === 'ERROR') throw Object.assign(new Error(`server error ${preAnswer.rc}: ${preAnswer.message}`), { rc: preAnswer.rc });
    if (preAnswer.type !== 'PRE_ANSWER') throw new Error(`expected PRE_ANSWER, got ${preAnswer.type}`);
    const pulled: { name: string; data: Buffer }[] = [];
    for (;;) {
      const p = await this.next(timeoutMs);
      if (p.type === 'PULL_FILE') pulled.push({ name: p.name, data: p.data });
      else if (p.type === 'RESPONSE') {
        return { rc: p.rc, appRc: p.appRc, message: p.message, body: p.body, files: pulled, load: p.load, preRc: preAnswer.rc, granted: preAnswer.granted };
      } else if (p.type === 'ERROR') throw Object.assign(new Error(`server error ${p.rc}: ${p.message}`), { rc: p.rc });
      else throw new Error(`unexpected ${p.type}`);
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

/** One short-connection transaction. */
export async function callOnce(ip: string, port: number, app: string, request: Buffer | string, o: CallOptions = {}): Promise<CallResult> {
  const c = await TestClient.connect(ip, port);
  try {
    return await c.call(app, request, o);
  } finally {
    c.close();
  }
}

/** A TCP connection (no Nagle) to ip:port, or a rejection after `timeoutMs`. */
export function connectSocket(ip: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port });
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect ${ip}:${port} timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * A raw peer for the deadline, limit and fuzz tests: one TCP connection that writes exactly the
 * bytes it is given (all at once, or dripped one byte at a time), keeps every byte the server
 * sends back, and records when and how the server ended the connection. Plus the readings these
 * tests share: the pool's error count, the worker logs, the wire code of an error name.
 */
import type net from 'node:net';
import { connectSocket } from './client.js';
import { FrameReader, limitsOf } from '../../../lib/protocol/frame.js';
import { decodePacket, type Packet } from '../../../lib/protocol/codec.js';
import { errorCodeOf, RC } from '../../../lib/protocol/result-codes.js';
import { Scoreboard } from '../../../ibas/scoreboard.js';
import { waitFor } from '../../helpers/procs.js';
import type { IbasHome } from './server.js';

/** The wire result code of an error code of lib/errors.ts (undefined when this build has none). */
export function rcOf(code: string): number | undefined {
  return Object.values(RC).find((rc) => rc !== RC.OK && errorCodeOf(rc) === code);
}

const limits = limitsOf({ maxFrame: 256 * 1024 * 1024, maxFile: 256 * 1024 * 1024, maxFiles: 1024 });

export class RawPeer {
  readonly socket: net.Socket;
  readonly openedAt = Date.now();
  /** When the server ended the connection (FIN or reset), 0 while open. */
  closedAt = 0;
  #chunks: Buffer[] = [];
  received = 0;
  #dripTimer: NodeJS.Timeout | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.me = `${socket.localAddress}:${socket.localPort}`;
    socket.on('data', (b: Buffer) => {
      this.#chunks.push(b);
      this.received += b.length;
    });
    const ended = (): void => {
      if (!this.closedAt) this.closedAt = Date.now();
      this.stopDrip();
    };
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('error', ended);
  }

  static async connect(ip: string, port: number, timeoutMs = 5000): Promise<RawPeer> {
    return new RawPeer(await connectSocket(ip, port, timeoutMs));
  }


  /** "ip:port" of this side, as the server logs it in client[…]. */
  readonly me: string;

  get closed(): boolean {
    return this.closedAt > 0;
  }

  write(b: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** Send `bytes` one byte every `everyMs` until all are sent or the server closes. */
  drip(bytes: Buffer, everyMs: number): void {
    let i = 0;
    this.stopDrip();
    this.#dripTimer = setInterval(() => {
      if (this.closed || i >= bytes.length) return this.stopDrip();
      this.write(bytes.subarray(i, i + 1));
      i++;
    }, everyMs);
  }

  stopDrip(): void {
    if (this.#dripTimer) clearInterval(this.#dripTimer);
    this.#dripTimer = undefined;
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** The binary packets received (a cut last frame is left out). */
  packets(): Packet[] {
    const r = new FrameReader(limits.maxFrame);
    const out: Packet[] = [];
    try {
      for (const f of r.push(this.bytes())) out.push(decodePacket(f, limits));
    } catch {
      // not binary (HTTP) or cut: what decoded so far
    }
    return out;
  }

  /** Wait until the server closed the connection; throws at the deadline. */
  async waitClosed(timeoutMs: number): Promise<number> {
    await waitFor('the server to close the connection', () => this.closed, timeoutMs, 20);
    return this.closedAt;
  }

  close(): void {
    this.stopDrip();
    this.socket.destroy();
  }
}

/** Failed transactions and protocol errors of the pool: live slots plus exited workers. */
export function poolErrors(s: IbasHome): number {
  const sb = Scoreboard.attach(s.scoreboardKey);
  if (!sb) return 0;
  try {
    const live = sb.all().filter((w) => w.state !== 'DEAD').reduce((n, w) => n + Math.max(w.errors, 0), 0);
    return live + sb.header().retiredErrors;
  } finally {
    sb.detach();
  }
}

/** Every worker log of the home (slots 0..n-1), joined. */
export function workerLogs(s: IbasHome, slots = 8): string {
  return Array.from({ length: slots }, (_, i) => s.log(i)).join('\n');
}

/** The worker-log line that closed `client` ("ip:port") in `phase`, once it is written. */
export async function deadlineLine(s: IbasHome, phase: string, client: string, timeoutMs = 10_000): Promise<string> {
  return waitFor(`a phase[${phase}] line for client[${client}]`, () => workerLogs(s).split('\n').find((l) => l.includes(`phase[${phase}]`) && l.includes(`client[${client}]`)), timeoutMs);
}

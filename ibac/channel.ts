/**
 * One TCP connection to an ibas host, speaking lib/protocol frames: open with a connect timeout,
 * write frames, await the server's packets one by one, and break off (timeout, reset, close,
 * malformed frame, ERROR packet) with a reason every waiter sees. A broken channel is never
 * reused: the caller opens a new one.
 *
 * No timer runs while the channel is idle, so an environment left open does not keep a process
 * alive beyond its sockets (which are unref'd while idle for the same reason).
 */
import net from 'node:net';
import { errorText, IbpError } from '../lib/errors.js';
import { decodePacket, type Packet } from '../lib/protocol/codec.js';
import { FrameReader, limitsOf, type Frame, type FrameLimits } from '../lib/protocol/frame.js';
import type { Ephemeral } from '../lib/protocol/tx-crypto.js';
import { resultName, resultOf } from '../lib/protocol/result-codes.js';
import type { BreakReason } from './errors.js';
import { MAX_FILES } from './files.js';

/** Why a channel broke off. */
export interface Break {
  reason: BreakReason;
  detail: string;
  /** The server's result code, when it sent an ERROR packet. */
  rc?: number;
  cause?: unknown;
}

export function isBreak(e: unknown): e is Break {
  return typeof e === 'object' && e !== null && 'reason' in e && 'detail' in e && !(e instanceof Error);
}

/** What a client accepts from a server: default frame sizes, at most MAX_FILES files. */
export const CLIENT_LIMITS: Readonly<FrameLimits> = Object.freeze(limitsOf({ maxFiles: MAX_FILES }));

export class Channel {
  readonly ip: string;
  readonly port: number;
  readonly key: string;
  readonly #socket: net.Socket;
  readonly #reader: FrameReader;
  readonly #limits: FrameLimits;
  readonly #queue: Packet[] = [];
  #waiter: { resolve: (p: Packet) => void; reject: (b: Break) => void } | undefined;
  #broken: Break | undefined;
  #deadline: NodeJS.Timeout | undefined;
  /**
   * Turns each received frame into the one to decode (a protected exchange opens its sealed
   * frames: ibac/request.ts); throws to break off. Undefined between protected exchanges.
   */
  opener: ((f: Frame) => Frame) | undefined;
  /** This connection's ephemeral key for signed transactions (made at the first one). */
  ephemeral: Ephemeral | undefined;

  private constructor(socket: net.Socket, ip: string, port: number, limits: FrameLimits) {
    this.#socket = socket;
    this.ip = ip;
    this.port = port;
    this.key = `${ip}:${port}`;
    this.#limits = limits;
    this.#reader = new FrameReader(limits.maxFrame);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.breakOff({ reason: 'closed', detail: 'the server closed the connection' }));
    socket.on('error', (e) => this.breakOff({ reason: 'reset', detail: `connection error: ${e.message}`, cause: e }));
    socket.on('close', () => this.breakOff({ reason: 'closed', detail: 'the connection was closed' }));
    socket.unref();
  }

  /**
   * Connect within `timeoutMs`. Rejects with an Error naming the failure (refused, unreachable,
   * timed out) — the caller suspends the host and tries the next one.
   */
  static open(ip: string, port: number, timeoutMs: number, limits: FrameLimits = CLIENT_LIMITS): Promise<Channel> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: ip, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection within ${timeoutMs} ms (connecting_timeout)`));
      }, timeoutMs);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(e);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve(new Channel(socket, ip, port, limits));
      });
    });
  }

  /** Open and not broken off. */
  get alive(): boolean {
    return this.#broken === undefined && !this.#socket.destroyed && this.#socket.writable;
  }

  get broken(): Break | undefined {
    return this.#broken;
  }

  /** Packets that arrived while nobody waited (normally none between transactions). */
  get pending(): number {
    return this.#queue.length;
  }

  /** Hold the process open while a transaction runs (and only then). */
  busy(on: boolean): void {
    if (on) this.#socket.ref();
    else this.#socket.unref();
  }

  /** Break off with reason 'timeout' after `ms` unless {@link disarm} comes first. */
  arm(ms: number, what: string): void {
    this.disarm();
    this.#deadline = setTimeout(() => this.breakOff({ reason: 'timeout', detail: `no ${what} within ${ms} ms` }), Math.max(1, ms));
  }

  disarm(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  /** The next packet from the server; rejects with a {@link Break}. */
  next(): Promise<Packet> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Write bytes; resolves once they are handed to the kernel, rejects with a {@link Break}. */
  write(bytes: Buffer): Promise<void> {
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (e) => {
        if (e) {
          this.breakOff({ reason: 'reset', detail: `write failed: ${e.message}`, cause: e });
          reject(this.#broken);
        } else if (this.#broken) {
          reject(this.#broken);
        } else {
          resolve();
        }
      });
    });
  }

  /** Break off: destroy the socket, fail the waiter. The first reason wins. */
  breakOff(b: Break): void {
    if (this.#broken) return;
    this.#broken = b;
    this.disarm();
    this.#socket.destroy();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(b);
  }

  /** Close cleanly (between transactions). */
  close(): void {
    if (this.#broken) return;
    this.#broken = { reason: 'destroyed', detail: 'the connection was closed by this client' };
    this.disarm();
    this.#socket.end();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#broken);
  }

  #onData(chunk: Buffer): void {
    if (this.#broken) return;
    let frames;
    try {
      frames = this.#reader.push(chunk);
    } catch (e) {
      this.breakOff({ reason: 'protocol', detail: `bad frame from the server: ${errorText(e)}`, cause: e });
      return;
    }
    for (const f of frames) {
      let p: Packet;
      try {
        p = decodePacket(this.opener ? this.opener(f) : f, this.#limits);
      } catch (e) {
        this.breakOff({ reason: 'protocol', detail: `bad packet from the server: ${errorText(e)}`, cause: e, rc: e instanceof IbpError ? resultOf(e) : undefined });
        return;
      }
      if (p.type === 'ERROR') {
        this.breakOff({ reason: 'server-error', detail: `the server sent ERROR ${resultName(p.rc)}: ${p.message}`, rc: p.rc });
        return;
      }
      const w = this.#waiter;
      if (w) {
        this.#waiter = undefined;
        w.resolve(p);
      } else {
        this.#queue.push(p);
      }
    }
  }
}

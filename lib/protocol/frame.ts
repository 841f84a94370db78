/**
 * IBP-TS wire frames: the length-prefixed envelope every transaction packet travels in, shared
 * by ibac (client) and ibas (server). docs/ARCHITECTURE.md §6 documents it byte by byte.
 *
 * A frame is a 12-byte header and a body:
 *
 *   offset  size  field
 *   0       2     magic "IB" (0x49 0x42)
 *   2       1     protocol version (1)
 *   3       1     packet type ({@link FRAME_TYPE})
 *   4       1     frame flags ({@link FRAME_FLAG}); unknown bits must be 0
 *   5       3     reserved, 0
 *   8       4     body length, uint32 big-endian (the header is not counted)
 *
 * The magic also lets a server sniff its first bytes: "IB" is the binary protocol, anything else
 * is tried as HTTP (no HTTP method starts with "IB").
 *
 * {@link FrameReader} cuts frames out of a byte stream that may arrive in any fragmentation and
 * rejects a malformed or oversized header as soon as its 12 bytes are in, before buffering the
 * body. After an error the reader is poisoned: the connection must be closed.
 */
import { IbpError } from '../errors.js';

export const MAGIC_0 = 0x49; // 'I'
export const MAGIC_1 = 0x42; // 'B'
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 12;

/**
 * Packet types. C→S: sent by the client; S→C: sent by the server.
 * @enum
 */
export const FRAME_TYPE = {
  /** C→S: opens a transaction: client node, app, journal, flags asked, number of files. */
  PRE_REQUEST: 0x01,
  /** S→C: accept (result 0) or reject the pre-request; carries the load. */
  PRE_ANSWER: 0x02,
  /** C→S: one attached file (name + bytes), as many as the pre-request announced. */
  PUSH_FILE: 0x03,
  /** C→S: the request bytes; the app runs when it is in. */
  REQUEST: 0x04,
  /** S→C: one file the app put into the response. */
  PULL_FILE: 0x05,
  /** S→C: the result code, load, timings and response bytes; ends the transaction. */
  RESPONSE: 0x06,
  /** C→S: keep a long connection alive between transactions. */
  KEEPALIVE: 0x07,
  /** S→C: answer to a keep-alive, with the load. */
  KEEPALIVE_ACK: 0x08,
  /** C→S: two-phase commit control (prepare / commit / rollback) on the same connection. */
  TX_CONTROL: 0x09,
  /** S→C: answer to a TX_CONTROL. */
  TX_CONTROL_ANSWER: 0x0a,
  /** S→C: a protocol error; the server closes the connection after it. */
  ERROR: 0x0f,
} as const;
export type FrameType = (typeof FRAME_TYPE)[keyof typeof FRAME_TYPE];

const TYPE_NAMES = new Map<number, string>(Object.entries(FRAME_TYPE).map(([k, v]) => [v, k]));

/** The name of a packet type for logs and errors ("PRE_REQUEST", or "0x3c"). */
export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Frame flags.
 * @enum
 */
export const FRAME_FLAG = {
  /** The body is lz4-compressed in lib/codec/lz4.ts's wire form (uint32 BE size + one block). */
  LZ4: 0x01,
  /**
   * Signed (and, when ENCRYPT was granted, encrypted) packet of a protected exchange:
   * lib/protocol/tx-crypto.ts. On a PRE_REQUEST: the body ends with the client's hello.
   */
  SEALED: 0x02,
  /** With SEALED: the body is encrypted (AES-256-GCM), not only authenticated. */
  ENCRYPTED: 0x04,
} as const;
const KNOWN_FLAGS = FRAME_FLAG.LZ4 | FRAME_FLAG.SEALED | FRAME_FLAG.ENCRYPTED;

/** Sizes a side accepts; both sides enforce theirs on every frame. */
export interface FrameLimits {
  /** Largest body of any frame, after decompression too (bytes). */
  maxFrame: number;
  /** Largest attached file (bytes); a file travels in one frame, so also ≤ maxFrame. */
  maxFile: number;
  /** Most attached files per direction per transaction. */
  maxFiles: number;
}

/** The absolute ceiling of a frame body: nothing bigger is ever buffered. */
export const HARD_MAX_FRAME = 256 * 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<FrameLimits> = Object.freeze({
  maxFrame: 16 * 1024 * 1024,
  maxFile: 16 * 1024 * 1024 - 1024,
  maxFiles: 64,
});

export function limitsOf(partial?: Partial<FrameLimits>): FrameLimits {
  const l = { ...DEFAULT_LIMITS, ...partial };
  l.maxFrame = Math.min(l.maxFrame, HARD_MAX_FRAME);
  return l;
}

export interface Frame {
  type: FrameType;
  flags: number;
  /** The body as it travelled (still compressed when flags has LZ4). */
  body: Buffer;
}

/** Build one frame: header + body. */
export function encodeFrame(type: FrameType, body: Buffer, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  writeHeader(out, type, flags, body.length);
  body.copy(out, HEADER_SIZE);
  return out;
}

/** Write a header into `out` at 0 (for callers that assemble the body in place). */
export function writeHeader(out: Buffer, type: FrameType, flags: number, bodyLength: number): void {
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = PROTOCOL_VERSION;
  out[3] = type;
  out[4] = flags;
  out[5] = 0;
  out[6] = 0;
  out[7] = 0;
  out.writeUInt32BE(bodyLength, 8);
}

/**
 * Check a 12-byte header; returns its type, flags and body length or throws
 * IBP_ERR_PROTO_FRAME / _VERSION / _TOO_LARGE.
 */
export function decodeHeader(h: Buffer, maxFrame: number): { type: FrameType; flags: number; length: number } {
  if (h.length < HEADER_SIZE) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `header of ${h.length} bytes, need ${HEADER_SIZE}` });
  if (h[0] !== MAGIC_0 || h[1] !== MAGIC_1) {
    throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `bad magic 0x${h.subarray(0, 2).toString('hex')} (expected 0x4942 "IB")` });
  }
  if (h[2] !== PROTOCOL_VERSION) throw new IbpError('IBP_ERR_PROTO_VERSION', { found: h[2], expected: PROTOCOL_VERSION });
  const type = h[3]!;
  if (!TYPE_NAMES.has(type)) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `unknown packet type ${frameTypeName(type)}` });
  const flags = h[4]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `unknown frame flags 0x${flags.toString(16)}` });
  if (h[5] !== 0 || h[6] !== 0 || h[7] !== 0) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: 'reserved header bytes are not 0' });
  if ((flags & FRAME_FLAG.ENCRYPTED) !== 0 && (flags & FRAME_FLAG.SEALED) === 0) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: 'frame flag ENCRYPTED without SEALED' });
  const length = h.readUInt32BE(8);
  if (length > maxFrame) throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size: length, limit: maxFrame });
  return { type: type as FrameType, flags, length };
}

/** Whether the first bytes of a connection look like the binary protocol (vs HTTP). */
export function looksBinary(first: Buffer): boolean {
  return first.length > 0 && first[0] === MAGIC_0 && (first.length < 2 || first[1] === MAGIC_1);
}

/**
 * Cuts frames out of a byte stream. Feed it every chunk with {@link push}; it returns the frames
 * completed by that chunk (often none, sometimes several). Throws on the first bad header; the
 * reader then refuses further input.
 */
export class FrameReader {
  readonly maxFrame: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = HEADER_SIZE;
  #header: { type: FrameType; flags: number; length: number } | undefined;
  #failed: IbpError | undefined;

  constructor(maxFrame: number = DEFAULT_LIMITS.maxFrame) {
    this.maxFrame = Math.min(maxFrame, HARD_MAX_FRAME);
  }

  /** Bytes held that do not yet form a whole frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /** True between frames (nothing partial held). */
  get idle(): boolean {
    return this.#buffered === 0 && this.#header === undefined;
  }

  push(chunk: Buffer): Frame[] {
    this.feed(chunk);
    const frames: Frame[] = [];
    for (let f = this.next(); f; f = this.next()) frames.push(f);
    return frames;
  }

  /**
   * Streaming use (a server that must act on each frame before the next header is judged): add
   * bytes with feed(), then take frames one by one with next() until it returns undefined.
   * `onHeader`, when given, sees each header as soon as its 12 bytes are in, before the body is
   * buffered: it may throw to refuse the frame (the reader is then poisoned like on a bad header).
   */
  feed(chunk: Buffer): void {
    if (this.#failed) throw this.#failed;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  next(onHeader?: (h: { type: FrameType; flags: number; length: number }) => void): Frame | undefined {
    if (this.#failed) throw this.#failed;
    try {
      while (this.#buffered >= this.#need) {
        if (this.#header === undefined) {
          const h = this.#take(HEADER_SIZE);
          this.#header = decodeHeader(h, this.maxFrame);
          this.#need = this.#header.length;
          onHeader?.(this.#header);
        } else {
          const body = this.#take(this.#header.length);
          const frame = { type: this.#header.type, flags: this.#header.flags, body };
          this.#header = undefined;
          this.#need = HEADER_SIZE;
          return frame;
        }
      }
    } catch (e) {
      this.#failed = e as IbpError;
      this.#chunks = [];
      this.#buffered = 0;
      throw e;
    }
    return undefined;
  }

  /** The stream ended: throws IBP_ERR_PROTO_TRUNCATED when a frame was cut. */
  end(): void {
    if (this.#failed) return;
    if (this.#header !== undefined) {
      throw new IbpError('IBP_ERR_PROTO_TRUNCATED', { detail: `${frameTypeName(this.#header.type)} body has ${this.#buffered} of ${this.#header.length} bytes` });
    }
    if (this.#buffered > 0) throw new IbpError('IBP_ERR_PROTO_TRUNCATED', { detail: `header has ${this.#buffered} of ${HEADER_SIZE} bytes` });
  }

  /** Remove `n` bytes from the front of the buffered chunks (copy only when they straddle chunks). */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/**
 * IBP-TS transaction packets: typed encode/decode of frame bodies (lib/protocol/frame.ts carries
 * them). docs/ARCHITECTURE.md §6 has the byte layout; this file is its executable form.
 *
 * A transaction on one connection (IBP's four packets):
 *
 *   client                                     server
 *   PRE_REQUEST(node, app, journal, flags, n) ─▶
 *                                            ◀─ PRE_ANSWER(rc, load, granted)   rc≠0: rejected
 *   PUSH_FILE × n                            ─▶
 *   REQUEST(bytes)                           ─▶                                 app runs
 *                                            ◀─ PULL_FILE × m
 *                                            ◀─ RESPONSE(rc, appRc, load, m, timing, bytes)
 *
 * A client may wait for PRE_ANSWER before pushing (IBP's way: no upload when rejected) or send
 * everything at once (one round trip). A server that rejects a pre-request still reads and drops
 * the n files and the request that follow it, so the connection stays usable.
 * KEEPALIVE/KEEPALIVE_ACK hold a long connection between transactions. TX_CONTROL carries the
 * two-phase-commit decision (commit or rollback after a transaction run with TX_FLAG.PREPARE).
 *
 * Integers are big-endian. str8 = uint8 length + UTF-8; str16 = uint16 length + UTF-8;
 * bytes32 = uint32 length + bytes. A body must be consumed exactly: trailing bytes are an error.
 */
import { IbpError } from '../errors.js';
import { checkPlainFileName } from '../home.js';
import { lz4Compress, lz4Decompress } from '../codec/lz4.js';
import { FRAME_FLAG, FRAME_TYPE, HEADER_SIZE, frameTypeName, writeHeader, type Frame, type FrameLimits, type FrameType } from './frame.js';

/**
 * Flags a client asks for in PRE_REQUEST; the server answers those it grants in PRE_ANSWER.
 * @enum
 */
export const TX_FLAG = {
  /** Every packet of the exchange signed (sealed PRE_REQUEST, lib/protocol/tx-crypto.ts): granted per ibas.conf security.sign_flag. */
  SIGN: 0x0001,
  /** lz4-compress bodies at least comm.min_compress_size long (granted when ibas.conf security.compress_flag = 1). */
  COMPRESS: 0x0002,
  /** Bodies and files encrypted too (asked only with SIGN): granted per ibas.conf security.encrypt_flag. */
  ENCRYPT: 0x0004,
  /** Two-phase commit: the app prepares; a TX_CONTROL commit/rollback on the same connection decides. */
  PREPARE: 0x0008,
  /**
   * A global transaction id (str8) follows the journal in the PRE_REQUEST: the transaction is one
   * leg of a multi-transaction (set by the encoder when `gtrid` is not empty; always granted).
   */
  GTRID: 0x0010,
} as const;
export const KNOWN_TX_FLAGS = TX_FLAG.SIGN | TX_FLAG.COMPRESS | TX_FLAG.ENCRYPT | TX_FLAG.PREPARE | TX_FLAG.GTRID;

/** Two-phase commit operations of TX_CONTROL. @enum */
export const TX_OP = { PREPARE: 1, COMMIT: 2, ROLLBACK: 3 } as const;
export type TxOp = keyof typeof TX_OP;

/** The server's load, carried by every answer: workers busy with a transaction / workers alive. */
export interface Load {
  working: number;
  total: number;
}

export interface PreRequest {
  type: 'PRE_REQUEST';
  /** Flags asked for ({@link TX_FLAG}). */
  flags: number;
  /** Attached files that follow (PUSH_FILE packets). */
  fileCount: number;
  /** The client's own timeout for this transaction in ms (0 = not told). */
  timeoutMs: number;
  clientNode: string;
  app: string;
  /** The client's journal number of the transaction (≤ 64 bytes). */
  journal: string;
  /** The global transaction id of a multi-transaction ('' = none; on the wire only with TX_FLAG.GTRID). */
  gtrid?: string;
}
export interface PreAnswer {
  type: 'PRE_ANSWER';
  rc: number;
  load: Load;
  /** Flags granted (a subset of those asked). */
  granted: number;
  message: string;
}
export interface FilePacket {
  type: 'PUSH_FILE' | 'PULL_FILE';
  /** 0-based position of the file in its direction of this transaction. */
  index: number;
  /** A plain file name (no path). */
  name: string;
  data: Buffer;
}
export interface RequestPacket {
  type: 'REQUEST';
  body: Buffer;
}
export interface ResponsePacket {
  type: 'RESPONSE';
  rc: number;
  /** What the app's somain returned (0 when it did not run). */
  appRc: number;
  load: Load;
  /** PULL_FILE packets sent before this response. */
  fileCount: number;
  /** Microseconds the app ran. */
  appUs: number;
  /** Empty on success; on failure the server's error text. */
  message: string;
  body: Buffer;
}
export interface KeepAlive { type: 'KEEPALIVE' }
export interface KeepAliveAck { type: 'KEEPALIVE_ACK'; load: Load }
/**
 * A two-phase decision. `gtrid` names the global transaction: a participant that has no prepared
 * transaction with `journal` on this connection resolves it from its participant log by gtrid
 * (a coordinator's retry on a new connection, recovery, an operator).
 */
export interface TxControl { type: 'TX_CONTROL'; op: TxOp; journal: string; gtrid: string }
/** The answer to a decision: the result, and what the app's socommit/sorollback returned and wrote. */
export interface TxControlAnswer { type: 'TX_CONTROL_ANSWER'; rc: number; load: Load; message: string; appRc: number; body: Buffer }
export interface ErrorPacket { type: 'ERROR'; rc: number; message: string }

export type Packet =
  | PreRequest | PreAnswer | FilePacket | RequestPacket | ResponsePacket
  | KeepAlive | KeepAliveAck | TxControl | TxControlAnswer | ErrorPacket;
export type PacketType = Packet['type'];

const MAX_NAME = 64;
const MAX_MESSAGE = 4096;
const U16 = 0xffff;

// ---------------------------------------------------------------- writing

class Writer {
  readonly buf: Buffer;
  off: number;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(HEADER_SIZE + size);
    this.off = HEADER_SIZE;
  }
  u8(v: number): this { this.buf[this.off++] = v; return this; }
  u16(v: number): this { this.buf.writeUInt16BE(v, this.off); this.off += 2; return this; }
  u32(v: number): this { this.buf.writeUInt32BE(v >>> 0, this.off); this.off += 4; return this; }
  i32(v: number): this { this.buf.writeInt32BE(v | 0, this.off); this.off += 4; return this; }
  raw(b: Buffer): this { b.copy(this.buf, this.off); this.off += b.length; return this; }
}

const NO_BYTES = Buffer.alloc(0);

function utf8(s: string, max: number, what: string): Buffer {
  if (s.length === 0) return NO_BYTES; // most messages are empty: no allocation
  const b = Buffer.from(s, 'utf8');
  if (b.length > max) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${what} is ${b.length} bytes, at most ${max}` });
  return b;
}

function u16Field(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > U16) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${what} ${v} is not within 0..65535` });
  return v;
}

function loadOf(load: Load): [number, number] {
  return [Math.min(Math.max(load.working | 0, 0), U16), Math.min(Math.max(load.total | 0, 0), U16)];
}

export interface EncodeOptions {
  /**
   * lz4-compress the body when it is at least this long and compression makes it smaller
   * (frame flag LZ4). Undefined: never.
   */
  compressMin?: number;
}

/** Encode one packet as a complete frame (header + body). */
export function encodePacket(p: Packet, opts: EncodeOptions = {}): Buffer {
  const frame = encodeRaw(p);
  if (opts.compressMin === undefined || frame.length - HEADER_SIZE < Math.max(opts.compressMin, 1)) return frame;
  const packed = lz4Compress(frame.subarray(HEADER_SIZE));
  if (!packed) return frame;
  const out = Buffer.allocUnsafe(HEADER_SIZE + packed.length);
  writeHeader(out, frame[3] as FrameType, FRAME_FLAG.LZ4, packed.length);
  packed.copy(out, HEADER_SIZE);
  return out;
}

/** Several packets in one buffer (a pipelined transaction: pre-request, files and request in one write). */
export function encodePackets(packets: readonly Packet[], opts: EncodeOptions = {}): Buffer {
  return Buffer.concat(packets.map((p) => encodePacket(p, opts)));
}

function finish(w: Writer, type: FrameType): Buffer {
  writeHeader(w.buf, type, 0, w.off - HEADER_SIZE);
  return w.off === w.buf.length ? w.buf : w.buf.subarray(0, w.off);
}

function encodeRaw(p: Packet): Buffer {
  switch (p.type) {
    case 'PRE_REQUEST': {
      const node = utf8(p.clientNode, MAX_NAME, 'client node');
      const app = utf8(p.app, MAX_NAME, 'app');
      const journal = utf8(p.journal, MAX_NAME, 'journal');
      const gtrid = utf8(p.gtrid ?? '', MAX_NAME, 'gtrid');
      if (app.length === 0) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: 'app is empty' });
      const flags = gtrid.length > 0 ? p.flags | TX_FLAG.GTRID : p.flags & ~TX_FLAG.GTRID;
      const w = new Writer(8 + 4 + node.length + app.length + journal.length + gtrid.length);
      w.u16(u16Field(flags, 'flags')).u16(u16Field(p.fileCount, 'file count')).u32(p.timeoutMs);
      w.u8(node.length).raw(node).u8(app.length).raw(app).u8(journal.length).raw(journal);
      if (gtrid.length > 0) w.u8(gtrid.length).raw(gtrid);
      return finish(w, FRAME_TYPE.PRE_REQUEST);
    }
    case 'PRE_ANSWER': {
      const msg = utf8(p.message, MAX_MESSAGE, 'message');
      const [working, total] = loadOf(p.load);
      const w = new Writer(12 + msg.length);
      w.i32(p.rc).u16(working).u16(total).u16(u16Field(p.granted, 'granted flags')).u16(msg.length).raw(msg);
      return finish(w, FRAME_TYPE.PRE_ANSWER);
    }
    case 'PUSH_FILE':
    case 'PULL_FILE': {
      const name = utf8(checkName(p.name), 255, 'file name');
      const w = new Writer(2 + 1 + name.length + 4 + p.data.length);
      w.u16(u16Field(p.index, 'file index')).u8(name.length).raw(name).u32(p.data.length).raw(p.data);
      return finish(w, p.type === 'PUSH_FILE' ? FRAME_TYPE.PUSH_FILE : FRAME_TYPE.PULL_FILE);
    }
    case 'REQUEST': {
      const w = new Writer(p.body.length);
      w.raw(p.body);
      return finish(w, FRAME_TYPE.REQUEST);
    }
    case 'RESPONSE': {
      const msg = utf8(p.message, MAX_MESSAGE, 'message');
      const [working, total] = loadOf(p.load);
      const w = new Writer(24 + msg.length + p.body.length);
      w.i32(p.rc).i32(p.appRc).u16(working).u16(total).u16(u16Field(p.fileCount, 'file count')).u32(Math.min(Math.max(Math.round(p.appUs), 0), 0xffffffff));
      w.u16(msg.length).raw(msg).u32(p.body.length).raw(p.body);
      return finish(w, FRAME_TYPE.RESPONSE);
    }
    case 'KEEPALIVE':
      return finish(new Writer(0), FRAME_TYPE.KEEPALIVE);
    case 'KEEPALIVE_ACK': {
      const [working, total] = loadOf(p.load);
      return finish(new Writer(4).u16(working).u16(total), FRAME_TYPE.KEEPALIVE_ACK);
    }
    case 'TX_CONTROL': {
      const journal = utf8(p.journal, MAX_NAME, 'journal');
      const op = TX_OP[p.op];
      if (op === undefined) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `unknown TX_CONTROL op ${String(p.op)}` });
      const gtrid = utf8(p.gtrid, MAX_NAME, 'gtrid');
      return finish(new Writer(3 + journal.length + gtrid.length).u8(op).u8(journal.length).raw(journal).u8(gtrid.length).raw(gtrid), FRAME_TYPE.TX_CONTROL);
    }
    case 'TX_CONTROL_ANSWER': {
      const msg = utf8(p.message, MAX_MESSAGE, 'message');
      const [working, total] = loadOf(p.load);
      const w = new Writer(18 + msg.length + p.body.length).i32(p.rc).u16(working).u16(total).u16(msg.length).raw(msg);
      w.i32(p.appRc).u32(p.body.length).raw(p.body);
      return finish(w, FRAME_TYPE.TX_CONTROL_ANSWER);
    }
    case 'ERROR': {
      const msg = utf8(p.message, MAX_MESSAGE, 'message');
      return finish(new Writer(6 + msg.length).i32(p.rc).u16(msg.length).raw(msg), FRAME_TYPE.ERROR);
    }
  }
}

function checkName(name: string): string {
  try {
    return checkPlainFileName(name);
  } catch (e) {
    throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: (e as Error).message });
  }
}

// ---------------------------------------------------------------- reading

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  off = 0;
  constructor(readonly buf: Buffer, readonly what: string) {}
  need(n: number, field: string): void {
    if (this.off + n > this.buf.length) {
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${this.what} body ends inside ${field} (${this.buf.length} bytes)` });
    }
  }
  u8(field: string): number { this.need(1, field); return this.buf[this.off++]!; }
  u16(field: string): number { this.need(2, field); const v = this.buf.readUInt16BE(this.off); this.off += 2; return v; }
  u32(field: string): number { this.need(4, field); const v = this.buf.readUInt32BE(this.off); this.off += 4; return v; }
  i32(field: string): number { this.need(4, field); const v = this.buf.readInt32BE(this.off); this.off += 4; return v; }
  bytes(n: number, field: string): Buffer { this.need(n, field); const b = this.buf.subarray(this.off, this.off + n); this.off += n; return b; }
  str(n: number, field: string): string {
    const b = this.bytes(n, field);
    // names are short and nearly always ASCII: read them as latin1 (the same text for bytes
    // below 0x80) without the UTF-8 decoder's call; anything else goes through the checking decoder
    let ascii = true;
    for (let i = 0; i < b.length; i++) {
      if (b[i]! > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return b.toString('latin1');
    try {
      return UTF8.decode(b);
    } catch {
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${this.what} ${field} is not valid UTF-8` });
    }
  }
  str8(field: string): string { return this.str(this.u8(field), field); }
  str16(field: string): string { return this.str(this.u16(field), field); }
  done(): void {
    if (this.off !== this.buf.length) {
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${this.what} has ${this.buf.length - this.off} trailing bytes` });
    }
  }
}

function name64(r: Reader, field: string, allowEmpty: boolean): string {
  const s = r.str8(field);
  if (s.length > MAX_NAME || (!allowEmpty && s.length === 0) || /[\x00-\x1f\x7f]/.test(s)) {
    throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${field} ${JSON.stringify(s)} must be 1..${MAX_NAME} printable characters` });
  }
  return s;
}

/**
 * Decode the body of a frame into a packet. Decompresses LZ4 bodies (bounded by
 * limits.maxFrame) and enforces limits.maxFile / maxFiles. Throws IBP_ERR_PROTO_*.
 */
export function decodePacket(frame: Frame, limits: FrameLimits): Packet {
  let body = frame.body;
  if (frame.flags & FRAME_FLAG.LZ4) {
    try {
      body = lz4Decompress(body, limits.maxFrame);
    } catch (e) {
      if ((e as IbpError).code === 'IBP_ERR_CODEC_TOO_LARGE') throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size: (e as IbpError).params.size, limit: limits.maxFrame });
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `${frameTypeName(frame.type)}: ${(e as Error).message}` });
    }
  }
  const r = new Reader(body, frameTypeName(frame.type));
  let p: Packet;
  switch (frame.type) {
    case FRAME_TYPE.PRE_REQUEST: {
      const flags = r.u16('flags');
      const fileCount = r.u16('file count');
      const timeoutMs = r.u32('timeout');
      const clientNode = name64(r, 'client node', true);
      const app = name64(r, 'app', false);
      const journal = name64(r, 'journal', true);
      const gtrid = (flags & TX_FLAG.GTRID) !== 0 ? name64(r, 'gtrid', false) : '';
      if (fileCount > limits.maxFiles) throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size: `${fileCount} files`, limit: `${limits.maxFiles} files` });
      p = { type: 'PRE_REQUEST', flags, fileCount, timeoutMs, clientNode, app, journal, gtrid };
      break;
    }
    case FRAME_TYPE.PRE_ANSWER: {
      const rc = r.i32('rc');
      const load = { working: r.u16('working'), total: r.u16('total') };
      const granted = r.u16('granted');
      p = { type: 'PRE_ANSWER', rc, load, granted, message: r.str16('message') };
      break;
    }
    case FRAME_TYPE.PUSH_FILE:
    case FRAME_TYPE.PULL_FILE: {
      const index = r.u16('file index');
      const name = checkName(r.str8('file name'));
      const size = r.u32('file size');
      if (size > limits.maxFile) throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size, limit: limits.maxFile });
      const data = r.bytes(size, 'file data');
      if (index >= limits.maxFiles) throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size: `file index ${index}`, limit: `${limits.maxFiles} files` });
      p = { type: frame.type === FRAME_TYPE.PUSH_FILE ? 'PUSH_FILE' : 'PULL_FILE', index, name, data };
      break;
    }
    case FRAME_TYPE.REQUEST:
      p = { type: 'REQUEST', body: r.bytes(body.length, 'request') };
      break;
    case FRAME_TYPE.RESPONSE: {
      const rc = r.i32('rc');
      const appRc = r.i32('app rc');
      const load = { working: r.u16('working'), total: r.u16('total') };
      const fileCount = r.u16('file count');
      const appUs = r.u32('app us');
      const message = r.str16('message');
      const size = r.u32('body size');
      p = { type: 'RESPONSE', rc, appRc, load, fileCount, appUs, message, body: r.bytes(size, 'response') };
      break;
    }
    case FRAME_TYPE.KEEPALIVE:
      p = { type: 'KEEPALIVE' };
      break;
    case FRAME_TYPE.KEEPALIVE_ACK:
      p = { type: 'KEEPALIVE_ACK', load: { working: r.u16('working'), total: r.u16('total') } };
      break;
    case FRAME_TYPE.TX_CONTROL: {
      const opNum = r.u8('op');
      const op = (Object.keys(TX_OP) as TxOp[]).find((k) => TX_OP[k] === opNum);
      if (!op) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `unknown TX_CONTROL op ${opNum}` });
      const journal = name64(r, 'journal', true);
      p = { type: 'TX_CONTROL', op, journal, gtrid: name64(r, 'gtrid', true) };
      break;
    }
    case FRAME_TYPE.TX_CONTROL_ANSWER: {
      const rc = r.i32('rc');
      const load = { working: r.u16('working'), total: r.u16('total') };
      const message = r.str16('message');
      const appRc = r.i32('app rc');
      const size = r.u32('body size');
      p = { type: 'TX_CONTROL_ANSWER', rc, load, message, appRc, body: r.bytes(size, 'body') };
      break;
    }
    case FRAME_TYPE.ERROR:
      p = { type: 'ERROR', rc: r.i32('rc'), message: r.str16('message') };
      break;
    default:
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `unknown packet type ${frameTypeName(frame.type)}` });
  }
  r.done();
  return p;
}

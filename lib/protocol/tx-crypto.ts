/**
 * Signed and encrypted transactions: the handshake carried by a sealed PRE_REQUEST and the seal
 * of every later packet of the exchange (docs/ARCHITECTURE.md §6.5, docs/security.md).
 *
 * Handshake (one per transaction, pipelining-safe: the client needs nothing from the server):
 * the client appends a HELLO to its PRE_REQUEST body and sets frame flag SEALED (a two-phase
 * decision, TX_CONTROL, carries one the same way: its exchange is the control and its answer):
 *
 *   offset size field
 *   0      1    hello version (1)
 *   1      8    client key KCV (the client node's sending key)
 *   9      8    server key KCV (the server node's key the client agreed with)
 *   17     8    client time, ms since the epoch (uint64 BE)
 *   25     16   nonce (random)
 *   41     32   client ephemeral X25519 public key (one per connection)
 *   73     64   Ed25519 signature by the client key over LABEL ‖ type ‖ pre-request (control) body ‖ hello[0..73)
 *
 * Version 2 (resumed): on a connection whose earlier hello (version 1, same ephemeral key, same
 * client key and node) the server verified and accepted, the last 64 bytes carry instead
 * HMAC-SHA256(resume key, the same data) ‖ 32 zero bytes, the resume key being HKDF of the
 * connection's X25519 secret (info "resume"): only the holder of the ephemeral private key — bound
 * to the client key by the verified signature — can make it. It saves one Ed25519 signature and
 * verification per transaction on a long connection; the server refuses a resumed hello it has no
 * verified signed one for (TX_TAMPERED).
 *
 * Both sides derive the exchange's keys: HKDF-SHA256(X25519(ephemeral, server key), salt = nonce,
 * info = LABEL ‖ client KCV ‖ server KCV ‖ ephemeral) → 64 bytes: client→server key ‖
 * server→client key. Only the server node's private key can derive them (the server is
 * authenticated by every sealed answer), only the client node's key can sign the hello (the
 * client is authenticated by the pre-request), and a fresh nonce makes every exchange's keys new.
 *
 * Seal (every later packet of the exchange, both ways; frame flag SEALED):
 *
 *   body = sender KCV (8) ‖ sequence (uint32 BE) ‖ payload ‖ tag (16)
 *
 * AES-256-GCM with the direction's key, IV = 8 zero bytes ‖ sequence. Encrypted (frame flag
 * ENCRYPTED besides SEALED): payload is the ciphertext of the inner body, AAD = type ‖ flags ‖ KCV
 * ‖ sequence. Signed only: payload is the inner body in clear and goes into the AAD too (GMAC).
 * The flags are authenticated, so encryption cannot be stripped; a side that was granted ENCRYPT
 * refuses a packet that is only signed. The PRE_ANSWER is signed, never encrypted (the client
 * learns from it whether ENCRYPT was granted); a client that asked ENCRYPT may encrypt its files
 * and request before it hears the answer (pipelining). The inner body is
 * what the frame would carry unsealed (lz4-compressed when its LZ4 flag is set). Sequences start
 * at 1 client→server (the pre-request is 0) and 0 server→client (PRE_ANSWER): a lower one is a
 * replay, a higher one a reordering, a wrong tag a tampered packet — each its own error.
 */
import { createCipheriv, createDecipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { IbpError } from '../errors.js';
import { rawPublicKey, type NodePrivateKey, type NodePublicKey } from '../node-keys.js';
import { FRAME_FLAG, FRAME_TYPE, HEADER_SIZE, frameTypeName, writeHeader, type Frame, type FrameType } from './frame.js';

export const HELLO_VERSION = 1;
export const HELLO_RESUMED = 2;
export const HELLO_SIZE = 1 + 8 + 8 + 8 + 16 + 32 + 64;
const SIGNED_PART = HELLO_SIZE - 64;
/** Bytes a seal adds to a body: KCV, sequence, tag. */
export const SEAL_OVERHEAD = 8 + 4 + 16;
const LABEL = Buffer.from('IBP-TS tx v1\0', 'latin1');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export interface Hello {
  /** {@link HELLO_VERSION} (signed) or {@link HELLO_RESUMED} (MAC'd). */
  version: number;
  clientKcv: string;
  serverKcv: string;
  timeMs: number;
  nonce: Buffer;
  ephemeral: Buffer;
  signature: Buffer;
  /** What the signature covers. */
  signed: Buffer;
}

/** One side's keys of one exchange. */
export interface ExchangeKeys {
  c2s: Buffer;
  s2c: Buffer;
}

/** A client's ephemeral X25519 pair (one per connection) and the secrets agreed with it. */
export class Ephemeral {
  readonly privateKey: KeyObject;
  readonly publicRaw: Buffer;
  readonly #shared = new Map<string, Buffer>();
  /** "clientKcv:serverKcv" pairs whose signed hello a server accepted on this connection. */
  readonly resumable = new Set<string>();
  readonly #resumeKeys = new Map<string, Buffer>();
  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    this.privateKey = privateKey;
    this.publicRaw = rawPublicKey(publicKey);
  }
  /** X25519 with a server key (computed once per server key). */
  agree(server: NodePublicKey): Buffer {
    let s = this.#shared.get(server.kcv);
    if (!s) {
      s = diffieHellman({ privateKey: this.privateKey, publicKey: server.agreePublicKey });
      this.#shared.set(server.kcv, s);
    }
    return s;
  }
  /** The resume key with a server key for a client key (derived once). */
  resumeKey(clientKcv: string, server: NodePublicKey): Buffer {
    const id = `${clientKcv}:${server.kcv}`;
    let k = this.#resumeKeys.get(id);
    if (!k) {
      k = resumeKeyOf(this.agree(server), clientKcv, server.kcv, this.publicRaw);
      this.#resumeKeys.set(id, k);
    }
    return k;
  }
}

function resumeKeyOf(shared: Buffer, clientKcv: string, serverKcv: string, ephemeral: Buffer): Buffer {
  const info = Buffer.concat([LABEL, Buffer.from('resume'), Buffer.from(clientKcv, 'hex'), Buffer.from(serverKcv, 'hex'), ephemeral]);
  return Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), info, 32));
}

function deriveKeys(shared: Buffer, nonce: Buffer, clientKcv: string, serverKcv: string, ephemeral: Buffer): ExchangeKeys {
  const info = Buffer.concat([LABEL, Buffer.from(clientKcv, 'hex'), Buffer.from(serverKcv, 'hex'), ephemeral]);
  const okm = Buffer.from(hkdfSync('sha256', shared, nonce, info, 64));
  return { c2s: okm.subarray(0, 32), s2c: okm.subarray(32) };
}

function kcvBytes(kcv: string, what: string): Buffer {
  const b = Buffer.from(kcv, 'hex');
  if (b.length !== 8) throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `${what} KCV ${JSON.stringify(kcv)} is not 16 hex characters` });
  return b;
}

/**
 * The client's sealed PRE_REQUEST (or TX_CONTROL: the same hello opens a decision's exchange,
 * whose only packets are the control and its sealed answer): `pre` is the encoded (unsealed) frame. Returns
 * the frame to send and the exchange keys.
 */
export function sealPreRequest(pre: Buffer, own: NodePrivateKey, server: NodePublicKey, eph: Ephemeral, now = Date.now(), resume = false): { frame: Buffer; keys: ExchangeKeys } {
  const body = pre.subarray(HEADER_SIZE);
  const nonce = randomBytes(16);
  const out = Buffer.allocUnsafe(pre.length + HELLO_SIZE);
  pre.copy(out, 0);
  let o = pre.length;
  out[o++] = resume ? HELLO_RESUMED : HELLO_VERSION;
  kcvBytes(own.kcv, 'client').copy(out, o); o += 8;
  kcvBytes(server.kcv, 'server').copy(out, o); o += 8;
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(now))), o); o += 8;
  nonce.copy(out, o); o += 16;
  eph.publicRaw.copy(out, o); o += 32;
  // a PRE_REQUEST or a TX_CONTROL (a 2PC decision, possibly on a new connection): the type is signed
  const signed = Buffer.concat([LABEL, Buffer.from([pre[3]!]), body, out.subarray(pre.length, o)]);
  if (resume) {
    createHmac('sha256', eph.resumeKey(own.kcv, server)).update(signed).digest().copy(out, o);
    out.fill(0, o + 32, o + 64);
  } else {
    sign(null, signed, own.signPrivateKey).copy(out, o);
  }
  writeHeader(out, pre[3] as FrameType, pre[4]! | FRAME_FLAG.SEALED, out.length - HEADER_SIZE);
  return { frame: out, keys: deriveKeys(eph.agree(server), nonce, own.kcv, server.kcv, eph.publicRaw) };
}

/** Split a sealed PRE_REQUEST (or TX_CONTROL) body into the inner body and its hello. */
export function splitHello(body: Buffer, type: FrameType = FRAME_TYPE.PRE_REQUEST): { inner: Buffer; hello: Hello } {
  if (body.length < HELLO_SIZE) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `sealed ${frameTypeName(type)} of ${body.length} bytes is shorter than its hello (${HELLO_SIZE})` });
  const at = body.length - HELLO_SIZE;
  const inner = body.subarray(0, at);
  const h = body.subarray(at);
  if (h[0] !== HELLO_VERSION && h[0] !== HELLO_RESUMED) throw new IbpError('IBP_ERR_PROTO_VERSION', { found: `hello ${h[0]}`, expected: `hello ${HELLO_VERSION} or ${HELLO_RESUMED}` });
  return {
    inner,
    hello: {
      version: h[0]!,
      clientKcv: h.subarray(1, 9).toString('hex'),
      serverKcv: h.subarray(9, 17).toString('hex'),
      timeMs: Number(h.readBigUInt64BE(17)),
      nonce: h.subarray(25, 41),
      ephemeral: h.subarray(41, 73),
      signature: h.subarray(73),
      signed: Buffer.concat([LABEL, Buffer.from([type]), inner, h.subarray(0, SIGNED_PART)]),
    },
  };
}

/** Does the hello carry a valid signature of `client`? */
/** The keys a server keeps per connection: the last ephemeral's secret and the client it verified with it. */
export interface AgreementCache {
  eph?: Buffer;
  kcv?: string;
  shared?: Buffer;
  /** The client key and node whose signed hello was verified with this ephemeral (resumption), and its resume key. */
  verified?: { clientKcv: string; node: string; serverKcv?: string; resumeKey?: Buffer };
}

/** Is a resumed hello's MAC right (see the file comment)? `cache` must hold this ephemeral's secret. */
export function helloResumedOk(hello: Hello, cache: AgreementCache): boolean {
  const v = cache.verified;
  if (!cache.shared || !cache.kcv || !cache.eph?.equals(hello.ephemeral) || !v) return false;
  if (!v.resumeKey || v.serverKcv !== hello.serverKcv) {
    v.resumeKey = resumeKeyOf(cache.shared, hello.clientKcv, hello.serverKcv, hello.ephemeral);
    v.serverKcv = hello.serverKcv;
  }
  const mac = createHmac('sha256', v.resumeKey).update(hello.signed).digest();
  return timingSafeEqual(mac, hello.signature.subarray(0, 32)) && hello.signature.subarray(32).every((b) => b === 0);
}

export function helloSignedBy(hello: Hello, client: NodePublicKey): boolean {
  try {
    return verify(null, hello.signed, client.signPublicKey, hello.signature);
  } catch {
    return false;
  }
}

/**
 * The server's side of the key agreement. `cache` holds the last ephemeral's secret of the
 * connection (a client keeps one ephemeral per connection: one X25519 per connection).
 */
export function serverKeys(hello: Hello, own: NodePrivateKey, cache: AgreementCache): ExchangeKeys {
  let shared = cache.shared;
  if (!shared || cache.kcv !== own.kcv || !cache.eph?.equals(hello.ephemeral)) {
    let pub: KeyObject;
    try {
      pub = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, hello.ephemeral]), format: 'der', type: 'spki' });
      shared = diffieHellman({ privateKey: own.agreePrivateKey, publicKey: pub });
    } catch (e) {
      throw new IbpError('IBP_ERR_TX_TAMPERED', { type: 'PRE_REQUEST', detail: `its ephemeral key is not an X25519 key (${(e as Error).message})` });
    }
    cache.eph = Buffer.from(hello.ephemeral);
    cache.kcv = own.kcv;
    cache.shared = shared;
    cache.verified = undefined;
  }
  return deriveKeys(shared, hello.nonce, hello.clientKcv, hello.serverKcv, hello.ephemeral);
}

/**
 * One side of one exchange: seals what it sends, opens what it receives, each direction with its
 * own key and sequence.
 */
export class TxSeal {
  readonly ownKcv: Buffer;
  readonly peerKcv: Buffer;
  /** Encrypt what this side sends (else: authenticate only). */
  encrypt: boolean;
  /** Refuse received packets that are not encrypted (ENCRYPT was granted). */
  requireEncrypted = false;
  #sendKey: Buffer;
  #recvKey: Buffer;
  #sendSeq: number;
  #recvSeq: number;

  constructor(role: 'client' | 'server', keys: ExchangeKeys, ownKcv: string, peerKcv: string, encrypt: boolean) {
    this.ownKcv = Buffer.from(ownKcv, 'hex');
    this.peerKcv = Buffer.from(peerKcv, 'hex');
    this.encrypt = encrypt;
    this.#sendKey = role === 'client' ? keys.c2s : keys.s2c;
    this.#recvKey = role === 'client' ? keys.s2c : keys.c2s;
    // the client's pre-request is its sequence 0 (covered by the signature)
    this.#sendSeq = role === 'client' ? 1 : 0;
    this.#recvSeq = role === 'client' ? 0 : 1;
  }

  /** Packets received so far in this exchange (sealed ones, plus the pre-request on the server). */
  get received(): number {
    return this.#recvSeq;
  }

  /** Seal an encoded frame (header + inner body); returns the sealed frame. */
  seal(frame: Buffer): Buffer {
    const type = frame[3] as FrameType;
    const flags = frame[4]! | FRAME_FLAG.SEALED | (this.encrypt ? FRAME_FLAG.ENCRYPTED : 0);
    const inner = frame.subarray(HEADER_SIZE);
    const seq = this.#sendSeq++;
    const out = Buffer.allocUnsafe(HEADER_SIZE + SEAL_OVERHEAD + inner.length);
    writeHeader(out, type, flags, out.length - HEADER_SIZE);
    this.ownKcv.copy(out, HEADER_SIZE);
    out.writeUInt32BE(seq, HEADER_SIZE + 8);
    const aadHead = Buffer.from([type, flags]);
    const c = createCipheriv('aes-256-gcm', this.#sendKey, iv(seq));
    const head = out.subarray(HEADER_SIZE, HEADER_SIZE + 12);
    const payloadAt = HEADER_SIZE + 12;
    if (this.encrypt) {
      c.setAAD(Buffer.concat([aadHead, head]));
      const n = c.update(inner).copy(out, payloadAt);
      c.final().copy(out, payloadAt + n);
    } else {
      c.setAAD(Buffer.concat([aadHead, head, inner]));
      c.final();
      inner.copy(out, payloadAt);
    }
    c.getAuthTag().copy(out, payloadAt + inner.length);
    return out;
  }

  /** Open a sealed frame; returns it as if it had travelled unsealed. Throws IBP_ERR_TX_*. */
  open(f: Frame): Frame {
    const what = frameTypeName(f.type);
    if ((f.flags & FRAME_FLAG.SEALED) === 0) {
      throw new IbpError('IBP_ERR_TX_TAMPERED', { type: what, detail: 'it came unsealed inside a protected exchange' });
    }
    if (f.body.length < SEAL_OVERHEAD) throw new IbpError('IBP_ERR_TX_TAMPERED', { type: what, detail: `its sealed body has ${f.body.length} bytes, less than the seal itself` });
    const kcv = f.body.subarray(0, 8);
    const seq = f.body.readUInt32BE(8);
    const payload = f.body.subarray(12, f.body.length - 16);
    const tag = f.body.subarray(f.body.length - 16);
    const aadHead = Buffer.from([f.type, f.flags]);
    const encrypted = (f.flags & FRAME_FLAG.ENCRYPTED) !== 0;
    const d = createDecipheriv('aes-256-gcm', this.#recvKey, iv(seq));
    d.setAuthTag(tag);
    let inner: Buffer;
    try {
      if (encrypted) {
        d.setAAD(Buffer.concat([aadHead, f.body.subarray(0, 12)]));
        inner = Buffer.concat([d.update(payload), d.final()]);
      } else {
        d.setAAD(Buffer.concat([aadHead, f.body.subarray(0, 12), payload]));
        d.final();
        inner = payload;
      }
    } catch {
      if (!kcv.equals(this.peerKcv)) throw new IbpError('IBP_ERR_TX_FOREIGN_KEY', { node: 'the peer', kcv: kcv.toString('hex'), detail: `this exchange was opened with key ${this.peerKcv.toString('hex')}` });
      throw new IbpError('IBP_ERR_TX_TAMPERED', { type: what, detail: `sequence ${seq}: its authentication tag does not match (altered in transit, or sealed with another exchange's key)` });
    }
    if (seq < this.#recvSeq) throw new IbpError('IBP_ERR_TX_REPLAY', { type: what, detail: `sequence ${seq} was already received in this exchange (next due: ${this.#recvSeq})` });
    if (seq > this.#recvSeq) throw new IbpError('IBP_ERR_TX_OUT_OF_ORDER', { type: what, got: seq, expected: this.#recvSeq });
    if (!encrypted && this.requireEncrypted) throw new IbpError('IBP_ERR_TX_TAMPERED', { type: what, detail: 'it is only signed in an exchange granted ENCRYPT' });
    this.#recvSeq++;
    return { type: f.type, flags: f.flags & ~(FRAME_FLAG.SEALED | FRAME_FLAG.ENCRYPTED), body: inner };
  }
}

function iv(seq: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(seq, 8);
  return b;
}

/**
 * Node keys: the contract between the key owners (ibms creates and rotates them, ibma publishes them
 * in the config space and writes the node's private key under its home) and the key users (ibac and
 * ibas sign, verify, encrypt and decrypt transactions with them).
 *
 * Each node has one or more key pairs: an Ed25519 pair that signs and an X25519 pair that agrees on
 * symmetric keys. A pair is named by its key check value (KCV), derived from its two public keys, and
 * carried on every protected packet so a receiver picks the right key without trying them all.
 *
 * Rotation follows IBP (ibms.conf security.new_key_enable_elapse / old_key_disable_elapse): a new
 * pair is published with `enableAt` in the future and the old one gets `disableAt`. A sender keeps
 * using the old pair until the new one's `enableAt`; a receiver accepts any published pair until its
 * `disableAt` (0 = never), chosen by KCV.
 *
 * Only node:crypto is used here; nothing in this file does I/O. The wire and file forms (raw keys in
 * base64url) are at the end.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

/** A node's public key pair as every node sees it in the config space. */
export interface NodePublicKey {
  node: string;
  /** Key check value: 16 lower-case hex characters ({@link keyCheckValue}). */
  kcv: string;
  /** Ed25519 public key: verifies the node's signatures. */
  signPublicKey: KeyObject;
  /** X25519 public key: agrees on a symmetric key with the node. */
  agreePublicKey: KeyObject;
  /** ms since the epoch from when senders use this pair (0 = from its publication). */
  enableAt: number;
  /** ms since the epoch after which receivers refuse this pair (0 = never). */
  disableAt: number;
}

/** A pair of the local node, private halves included (never in the config space). */
export interface NodePrivateKey extends NodePublicKey {
  signPrivateKey: KeyObject;
  agreePrivateKey: KeyObject;
}

/** Why a peer's key is not accepted. Each maps to its own error code in lib/errors.ts. */
export type KeyRefusal = 'UNKNOWN_NODE' | 'UNKNOWN_KEY' | 'KEY_EXPIRED';

export type PeerKeyLookup = { key: NodePublicKey; refusal?: undefined } | { key?: undefined; refusal: KeyRefusal };

/**
 * What a transaction end needs from the key store. ibma's config-space reader implements it; tests
 * may build one from generated keys with {@link StaticKeyring}.
 */
export interface NodeKeyring {
  /** The node this process runs on (its private keys are held). */
  readonly localNode: string;
  /** The local pair to send with at `now`, or undefined when the node has no usable key. */
  sendingKey(now: number): NodePrivateKey | undefined;
  /** A local pair by KCV (a peer encrypted to it), when still accepted at `now`. */
  localKey(kcv: string, now: number): NodePrivateKey | undefined;
  /** A peer's pair by KCV, or why it is refused at `now`. */
  peerKey(node: string, kcv: string, now: number): PeerKeyLookup;
  /** The pair a peer sends with at `now` (to encrypt to it before it has spoken), if any. */
  peerSendingKey(node: string, now: number): NodePublicKey | undefined;
}

/** The KCV of a pair: sha256 over both raw public keys, first 8 bytes in hex. */
export function keyCheckValue(signPublicKey: KeyObject, agreePublicKey: KeyObject): string {
  const h = createHash('sha256');
  h.update(rawPublicKey(signPublicKey));
  h.update(rawPublicKey(agreePublicKey));
  return h.digest('hex').slice(0, 16);
}

/** The 32 raw bytes of an Ed25519 or X25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** Is a pair accepted by receivers at `now`? */
export function keyAccepted(key: NodePublicKey, now: number): boolean {
  return key.disableAt === 0 || now < key.disableAt;
}

/**
 * The pair a sender uses at `now`: among accepted pairs whose enableAt has come, the one enabled
 * last (so the old pair keeps sending until the new one's enable time).
 */
export function pickSendingKey<K extends NodePublicKey>(keys: readonly K[], now: number): K | undefined {
  let best: K | undefined;
  for (const k of keys) {
    if (!keyAccepted(k, now) || k.enableAt > now) continue;
    if (best === undefined || k.enableAt >= best.enableAt) best = k;
  }
  return best;
}

/** A keyring over fixed key lists (the config-space reader rebuilds one on every config flip). */
export class StaticKeyring implements NodeKeyring {
  readonly localNode: string;
  readonly #own: readonly NodePrivateKey[];
  readonly #peers: ReadonlyMap<string, readonly NodePublicKey[]>;

  constructor(localNode: string, own: readonly NodePrivateKey[], peers: Iterable<NodePublicKey>) {
    this.localNode = localNode;
    this.#own = own;
    const byNode = new Map<string, NodePublicKey[]>();
    for (const k of peers) {
      const list = byNode.get(k.node) ?? [];
      list.push(k);
      byNode.set(k.node, list);
    }
    this.#peers = byNode;
  }

  sendingKey(now: number): NodePrivateKey | undefined {
    return pickSendingKey(this.#own, now);
  }

  localKey(kcv: string, now: number): NodePrivateKey | undefined {
    return this.#own.find((k) => k.kcv === kcv && keyAccepted(k, now));
  }

  peerKey(node: string, kcv: string, now: number): PeerKeyLookup {
    const list = this.#peers.get(node);
    if (list === undefined || list.length === 0) return { refusal: 'UNKNOWN_NODE' };
    const key = list.find((k) => k.kcv === kcv);
    if (key === undefined) return { refusal: 'UNKNOWN_KEY' };
    if (!keyAccepted(key, now)) return { refusal: 'KEY_EXPIRED' };
    return { key };
  }

  peerSendingKey(node: string, now: number): NodePublicKey | undefined {
    return pickSendingKey(this.#peers.get(node) ?? [], now);
  }
}

// ---------------------------------------------------------------- wire and file forms

/**
 * A public pair as the registry sends it in a bundle (`NodeBundle.node_keys`) and ibma writes it into
 * the config space: raw 32-byte keys in base64url (the JWK `x`), times in ms since the epoch.
 */
export interface NodeKeyWire {
  node: string;
  kcv: string;
  sign_public: string;
  agree_public: string;
  enable_at: number;
  disable_at: number;
}

/**
 * A pair with its private halves, as the registry keeps it (keys/node_<N>.keys) and sends it to
 * that node's agent only (`GET /v1/agent/node_keys/:node`), which writes it to
 * keys/<node>.<kcv>.prikey (mode 0600). Private halves are raw 32-byte keys in base64url (JWK `d`).
 */
export interface NodePrivateKeyWire extends NodeKeyWire {
  sign_private: string;
  agree_private: string;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const KCV_RE = /^[0-9a-f]{16}$/;

/** A new pair for `node` (Ed25519 + X25519 from node:crypto). */
export function generateNodeKey(node: string, enableAt: number, disableAt = 0): NodePrivateKey {
  const sign = generateKeyPairSync('ed25519');
  const agree = generateKeyPairSync('x25519');
  return {
    node,
    kcv: keyCheckValue(sign.publicKey, agree.publicKey),
    signPublicKey: sign.publicKey,
    agreePublicKey: agree.publicKey,
    signPrivateKey: sign.privateKey,
    agreePrivateKey: agree.privateKey,
    enableAt,
    disableAt,
  };
}

function jwkPart(key: KeyObject, part: 'x' | 'd'): string {
  const v = key.export({ format: 'jwk' })[part];
  if (typeof v !== 'string') throw new Error(`key has no JWK ${part}`);
  return v;
}

export function nodeKeyToWire(k: NodePublicKey): NodeKeyWire {
  return { node: k.node, kcv: k.kcv, sign_public: jwkPart(k.signPublicKey, 'x'), agree_public: jwkPart(k.agreePublicKey, 'x'), enable_at: k.enableAt, disable_at: k.disableAt };
}

export function nodePrivateKeyToWire(k: NodePrivateKey): NodePrivateKeyWire {
  return { ...nodeKeyToWire(k), sign_private: jwkPart(k.signPrivateKey, 'd'), agree_private: jwkPart(k.agreePrivateKey, 'd') };
}

function timeOk(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * A public pair from its wire form. Throws an Error saying what is wrong (a bad field, or a KCV
 * that is not the one of the two keys): callers wrap it into their own error code.
 */
export function nodeKeyFromWire(w: NodeKeyWire): NodePublicKey {
  if (typeof w !== 'object' || w === null) throw new Error('not an object');
  if (typeof w.node !== 'string' || w.node.length === 0) throw new Error('no node');
  if (typeof w.kcv !== 'string' || !KCV_RE.test(w.kcv)) throw new Error(`kcv ${String(w.kcv)} is not 16 hex digits`);
  for (const f of ['sign_public', 'agree_public'] as const) if (typeof w[f] !== 'string' || !B64URL_32.test(w[f])) throw new Error(`${f} is not a base64url 32-byte key`);
  if (!timeOk(w.enable_at) || !timeOk(w.disable_at)) throw new Error('enable_at/disable_at must be ms since the epoch (0 = none)');
  const signPublicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: w.sign_public }, format: 'jwk' });
  const agreePublicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: w.agree_public }, format: 'jwk' });
  const kcv = keyCheckValue(signPublicKey, agreePublicKey);
  if (kcv !== w.kcv) throw new Error(`kcv ${w.kcv} does not match its keys (${kcv})`);
  return { node: w.node, kcv, signPublicKey, agreePublicKey, enableAt: w.enable_at, disableAt: w.disable_at };
}

/** A private pair from its wire form; the private halves must belong to the public ones. */
export function nodePrivateKeyFromWire(w: NodePrivateKeyWire): NodePrivateKey {
  const pub = nodeKeyFromWire(w);
  for (const f of ['sign_private', 'agree_private'] as const) if (typeof w[f] !== 'string' || !B64URL_32.test(w[f])) throw new Error(`${f} is not a base64url 32-byte key`);
  const signPrivateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: w.sign_public, d: w.sign_private }, format: 'jwk' });
  const agreePrivateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: w.agree_public, d: w.agree_private }, format: 'jwk' });
  // a JWK import does not check that d belongs to x: derive the public halves and compare
  if (!rawPublicKey(signPrivateKey).equals(rawPublicKey(pub.signPublicKey)) || !rawPublicKey(agreePrivateKey).equals(rawPublicKey(pub.agreePublicKey))) {
    throw new Error(`the private keys of kcv ${w.kcv} do not belong to its public keys`);
  }
  return { ...pub, signPrivateKey, agreePrivateKey };
}

/** The file name of a node's private pair in an agent home's keys/ folder. */
export function privateKeyFileName(node: string, kcv: string): string {
  return `${node}.${kcv}.prikey`;
}

/** Parse a private-key file name back; undefined when it is not one. */
export function parsePrivateKeyFileName(name: string): { node: string; kcv: string } | undefined {
  const m = /^(.+)\.([0-9a-f]{16})\.prikey$/.exec(name);
  return m ? { node: m[1]!, kcv: m[2]! } : undefined;
}

/** What a pair is at `now`, as the admin tools show it (`ibms -s node_keys`, `ibma -s node_keys`). */
export type KeyState = 'sending' | 'accepted' | 'pending' | 'disabled';

/**
 * The state of `key` among the pairs of its node (`all` may hold other nodes' pairs too):
 * `sending` = the pair {@link pickSendingKey} chooses, `accepted` = published and accepted but not
 * the sending one, `pending` = not enabled yet, `disabled` = past its disable time.
 */
export function keyState<K extends Pick<NodePublicKey, 'node' | 'kcv' | 'enableAt' | 'disableAt'>>(key: K, all: readonly K[], now: number): KeyState {
  if (!keyAccepted(key as unknown as NodePublicKey, now)) return 'disabled';
  if (key.enableAt > now) return 'pending';
  const sending = pickSendingKey(all.filter((k) => k.node === key.node) as unknown as NodePublicKey[], now);
  return sending !== undefined && sending.kcv === key.kcv ? 'sending' : 'accepted';
}

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
 * Only node:crypto is used here; nothing in this file does I/O.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

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

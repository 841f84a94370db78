/**
 * The registry's node keys (issue 11, "Node keys and their rotation"): every node has one or more
 * key pairs (Ed25519 to sign, X25519 to agree; lib/node-keys.ts), kept by ibms in its home:
 *
 *   keys/node_<NODE>.keys   JSON `{node, keys: NodePrivateKeyWire[]}`, mode 0600, written with
 *                           write-file-atomic; created when the node is added, by `ibms -a init`
 *                           for the nodes of an existing home, or when first needed (a bundle, an
 *                           agent's fetch, `-s node_keys`) for a node that has none (a registry
 *                           from before node keys)
 *
 * Files are read when a node's pairs are first needed, not at start: a registry of 10,000 nodes
 * starts as fast as before. A file is checked for its shape (names, 43-character keys, times), not
 * re-verified with crypto: it is ibms's own 0600 file, and every receiver checks the KCV again.
 *
 * Distribution (ibms/registry.ts): public halves travel in the bundles (`node_keys`) of the nodes
 * that hold the node (the node and every node sharing a project with it); the private halves go
 * only to the node's own agent (`GET /v1/agent/node_keys/:node` with that node's credential).
 *
 * Rotation (`ibms -a rotate_node_key --node N`): a new pair with enable_at = now +
 * security.new_key_enable_elapse, and every pair of N still without a disable time gets disable_at
 * = now + security.old_key_disable_elapse. Pairs past their disable time are dropped at the next
 * rotation of the node and when the file is next read (after a restart).
 */
import fs from 'node:fs';
import writeFileAtomic from 'write-file-atomic';
import type { Home } from '../lib/home.js';
import { createFileExclusive, readFileNoFollow } from '../lib/durable-file.js';
import { IbpError } from '../lib/errors.js';
import { generateNodeKey, nodePrivateKeyToWire, type NodeKeyWire, type NodePrivateKeyWire } from '../lib/node-keys.js';

export const nodeKeysFile = (node: string): string => `node_${node}.keys`;

/** The public part of a stored pair (what bundles and `-s node_keys` show). */
export function publicPart(k: NodePrivateKeyWire): NodeKeyWire {
  return { node: k.node, kcv: k.kcv, sign_public: k.sign_public, agree_public: k.agree_public, enable_at: k.enable_at, disable_at: k.disable_at };
}

export interface Rotation {
  node: string;
  /** The new pair. */
  kcv: string;
  enable_at: number;
  /** Pairs that got a disable time now (or kept an earlier one). */
  old: { kcv: string; disable_at: number }[];
  /** Pairs dropped because they were past their disable time. */
  dropped: string[];
}

export class NodeKeys {
  readonly #home: Home;
  readonly #byNode = new Map<string, NodePrivateKeyWire[]>();
  /**
   * Bumped by every change a built bundle could have missed (rotation, removal): cached bundles key
   * on it. Loading or creating a node's first pair does not bump it: any bundle holding the node
   * loaded or created it while being built.
   */
  generation = 0;
  readonly #onCreate: ((node: string, file: string) => void) | undefined;

  constructor(home: Home, opts: { onCreate?: (node: string, file: string) => void } = {}) {
    this.#home = home;
    this.#onCreate = opts.onCreate;
  }

  fileOf(node: string): string {
    return this.#home.keys(nodeKeysFile(node));
  }

  /**
   * Load the node's pairs, or create its first pair (enabled at once) when it has none. Pairs past
   * their disable time are dropped. Returns whether a pair was created. `durable: false` skips the
   * fsync of the new file (`ibms -a init` creating many at once).
   */
  ensureNode(node: string, now = Date.now(), durable = true): { created: boolean; dropped: string[] } {
    if (this.#byNode.has(node)) return { created: false, dropped: [] };
    const file = this.fileOf(node);
    const loaded = readKeysFile(file, node);
    if (loaded !== undefined && loaded.length > 0) {
      const kept = loaded.filter((k) => k.disable_at === 0 || k.disable_at > now);
      const dropped = loaded.filter((k) => !kept.includes(k)).map((k) => k.kcv);
      if (kept.length > 0) {
        this.#byNode.set(node, kept);
        if (dropped.length > 0) this.#write(node);
        return { created: false, dropped };
      }
    }
    const first = [nodePrivateKeyToWire(generateNodeKey(node, 0))];
    if (loaded === undefined) {
      // no file: create it exclusively, so ibms and `ibms -a init` never both make one
      if (!createExclusive(file, keysText(node, first), durable)) return this.ensureNode(node, now, durable);
      this.#byNode.set(node, first);
    } else {
      this.#byNode.set(node, first);
      this.#write(node, durable);
    }
    this.#onCreate?.(node, file);
    return { created: true, dropped: [] };
  }

  /** A removed node: its pairs are forgotten and its file deleted. */
  removeNode(node: string): void {
    this.#byNode.delete(node);
    this.generation++;
    try {
      fs.unlinkSync(this.fileOf(node));
    } catch {
      // never written
    }
  }

  /** The node's pairs with their private halves (its own agent only); loaded or created when first needed. */
  privateKeys(node: string): NodePrivateKeyWire[] {
    this.ensureNode(node);
    return (this.#byNode.get(node) ?? []).map((k) => ({ ...k }));
  }

  /** The node's public pairs; loaded or created when first needed. */
  publicKeys(node: string): NodeKeyWire[] {
    this.ensureNode(node);
    return (this.#byNode.get(node) ?? []).map(publicPart);
  }

  /** Start a rotation (see the file comment); elapses in ms. */
  rotate(node: string, enableElapseMs: number, disableElapseMs: number, now = Date.now()): Rotation {
    const loaded = this.ensureNode(node, now);
    const before = this.#byNode.get(node)!;
    const kept = before.filter((k) => k.disable_at === 0 || k.disable_at > now);
    const dropped = [...loaded.dropped, ...before.filter((k) => !kept.includes(k)).map((k) => k.kcv)];
    const disableAt = Math.round(now + disableElapseMs);
    const old = kept.map((k) => {
      const d = k.disable_at === 0 ? disableAt : Math.min(k.disable_at, disableAt);
      return { ...k, disable_at: d };
    });
    const fresh = nodePrivateKeyToWire(generateNodeKey(node, Math.round(now + enableElapseMs)));
    this.#byNode.set(node, [...old, fresh]);
    this.#write(node);
    this.generation++;
    return { node, kcv: fresh.kcv, enable_at: fresh.enable_at, old: old.map((k) => ({ kcv: k.kcv, disable_at: k.disable_at })), dropped };
  }

  #write(node: string, durable = true): void {
    const file = this.fileOf(node);
    try {
      writeFileAtomic.sync(file, keysText(node, this.#byNode.get(node) ?? []), { mode: 0o600, fsync: durable });
    } catch (e) {
      throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
    }
  }
}

function keysText(node: string, keys: NodePrivateKeyWire[]): string {
  return `${JSON.stringify({ node, keys }, null, 2)}\n`;
}

/**
 * Write `file` only if it does not exist: a complete temporary file (0600, fsynced when `durable`)
 * hard-linked to its name (link(2) fails on an existing name: atomic and exclusive). False when
 * another process created it first.
 */
function createExclusive(file: string, text: string, durable: boolean): boolean {
  try {
    return createFileExclusive(file, text, 0o600, durable);
  } catch (e) {
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
  }
}

/** Read keys/node_<N>.keys: undefined when absent; IBP_ERR_NODE_KEY_FILE when unusable. */
function readKeysFile(file: string, node: string): NodePrivateKeyWire[] | undefined {
  const refuse = (detail: string, cause?: unknown): IbpError => new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail }, { cause });
  let text: string;
  try {
    const read = readFileNoFollow(file, refuse, (st) => {
      if ((st.mode & 0o077) !== 0) throw refuse(`its mode is ${(st.mode & 0o777).toString(8)}: run chmod 600 on it`);
    });
    if (read === undefined) return undefined;
    text = read.bytes.toString('utf8');
  } catch (e) {
    if (e instanceof IbpError) throw e;
    throw refuse((e as Error).message, e);
  }
  try {
    const doc = JSON.parse(text) as { node?: unknown; keys?: unknown };
    if (doc.node !== node || !Array.isArray(doc.keys)) throw new Error(`expected {"node": "${node}", "keys": [...]}`);
    return (doc.keys as NodePrivateKeyWire[]).map((k, i) => {
      const bad = checkShape(k, node);
      if (bad) throw new Error(`keys[${i}]: ${bad}`);
      return { ...publicPart(k), sign_private: k.sign_private, agree_private: k.agree_private };
    });
  } catch (e) {
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: (e as Error).message }, { cause: e });
  }
}


const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** What is wrong with a stored pair's shape, if anything. */
function checkShape(k: NodePrivateKeyWire, node: string): string | undefined {
  if (typeof k !== 'object' || k === null) return 'not an object';
  if (k.node !== node) return `a pair of node ${String(k.node)}`;
  if (typeof k.kcv !== 'string' || !/^[0-9a-f]{16}$/.test(k.kcv)) return 'kcv is not 16 hex digits';
  for (const f of ['sign_public', 'agree_public', 'sign_private', 'agree_private'] as const) if (typeof k[f] !== 'string' || !B64URL_32.test(k[f])) return `${f} is not a base64url 32-byte key`;
  for (const f of ['enable_at', 'disable_at'] as const) if (!Number.isSafeInteger(k[f]) || k[f] < 0) return `${f} is not ms since the epoch`;
  return undefined;
}

/**
 * The registry's node keys (issue 11, "Node keys and their rotation"): every node has one or more
 * key pairs (Ed25519 to sign, X25519 to agree; lib/node-keys.ts), kept by ibms in its home:
 *
 *   keys/node_<NODE>.keys   JSON `{node, keys: NodePrivateKeyWire[]}`, mode 0600, written with
 *                           write-file-atomic; created when the node is added, or at the worker's
 *                           start for a node that has none (a registry from before node keys)
 *
 * Distribution (ibms/registry.ts): public halves travel in the bundles (`node_keys`) of the nodes
 * that hold the node (the node and every node sharing a project with it); the private halves go
 * only to the node's own agent (`GET /v1/agent/node_keys/:node` with that node's credential).
 *
 * Rotation (`ibms -a rotate_node_key --node N`): a new pair with enable_at = now +
 * security.new_key_enable_elapse, and every pair of N still without a disable time gets disable_at
 * = now + security.old_key_disable_elapse. Pairs past their disable time are dropped at the next
 * rotation of the node and at the worker's start.
 */
import fs from 'node:fs';
import writeFileAtomic from 'write-file-atomic';
import type { Home } from '../lib/home.js';
import { IbpError } from '../lib/errors.js';
import { generateNodeKey, nodePrivateKeyFromWire, nodePrivateKeyToWire, type NodeKeyWire, type NodePrivateKeyWire } from '../lib/node-keys.js';

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
  /** Bumped by every change: cached bundles key on it. */
  generation = 0;

  constructor(home: Home) {
    this.#home = home;
  }

  fileOf(node: string): string {
    return this.#home.keys(nodeKeysFile(node));
  }

  /**
   * Load the node's pairs, or create its first pair (enabled at once) when it has none. Pairs past
   * their disable time are dropped. Returns whether a pair was created.
   */
  ensureNode(node: string, now = Date.now()): { created: boolean; dropped: string[] } {
    if (this.#byNode.has(node)) return { created: false, dropped: [] };
    const file = this.fileOf(node);
    const loaded = readKeysFile(file, node);
    if (loaded !== undefined && loaded.length > 0) {
      const kept = loaded.filter((k) => k.disable_at === 0 || k.disable_at > now);
      const dropped = loaded.filter((k) => !kept.includes(k)).map((k) => k.kcv);
      if (kept.length > 0) {
        this.#byNode.set(node, kept);
        if (dropped.length > 0) this.#write(node);
        this.generation++;
        return { created: false, dropped };
      }
    }
    this.#byNode.set(node, [nodePrivateKeyToWire(generateNodeKey(node, 0))]);
    this.#write(node);
    this.generation++;
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

  /** The node's pairs with their private halves (its own agent only). */
  privateKeys(node: string): NodePrivateKeyWire[] {
    return (this.#byNode.get(node) ?? []).map((k) => ({ ...k }));
  }

  /** The node's public pairs. */
  publicKeys(node: string): NodeKeyWire[] {
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

  #write(node: string): void {
    const file = this.fileOf(node);
    try {
      writeFileAtomic.sync(file, `${JSON.stringify({ node, keys: this.#byNode.get(node) ?? [] }, null, 2)}\n`, { mode: 0o600, fsync: true });
    } catch (e) {
      throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
    }
  }
}

/** Read keys/node_<N>.keys: undefined when absent; IBP_ERR_NODE_KEY_FILE when unusable. */
function readKeysFile(file: string, node: string): NodePrivateKeyWire[] | undefined {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: 'it is not a regular file' });
      if ((st.mode & 0o077) !== 0) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: `its mode is ${(st.mode & 0o777).toString(8)}: run chmod 600 on it` });
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (e instanceof IbpError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: (e as Error).message }, { cause: e });
  }
  try {
    const doc = JSON.parse(text) as { node?: unknown; keys?: unknown };
    if (doc.node !== node || !Array.isArray(doc.keys)) throw new Error(`expected {"node": "${node}", "keys": [...]}`);
    return (doc.keys as NodePrivateKeyWire[]).map((k) => {
      if (k.node !== node) throw new Error(`a pair of node ${String(k.node)}`);
      nodePrivateKeyFromWire(k); // throws when a field is bad or the halves do not match
      return { ...publicPart(k), sign_private: k.sign_private, agree_private: k.agree_private };
    });
  } catch (e) {
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: (e as Error).message }, { cause: e });
  }
}


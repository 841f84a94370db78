/**
 * The agent's side of node keys (docs/security.md): the public pairs of every node travel in the
 * bundle (`node_keys`) and go into the config space with the rest of it (lib/shm/config-segment.ts);
 * the PRIVATE halves of this node's pairs are fetched from ibms with the node's own credential
 * (`GET /v1/agent/node_keys/:node`) whenever the bundle lists a pair of this node that has no file
 * yet, and written to `keys/<node>.<kcv>.prikey` (mode 0600, lib/node-key-files.ts) BEFORE the
 * bundle is published, so a reader that sees a pair in the space finds its private file.
 *
 * Files of pairs past their disable time, or no longer listed by the registry, are removed at each
 * bundle and on a timer ({@link NodeKeySync.prune}).
 */
import { errorText, IbpError } from '../lib/errors.js';
import { decodeJsonBody } from '../lib/codec/json-body.js';
import type { Home } from '../lib/home.js';
import type { Logger } from '../lib/log.js';
import type { NodeBundle } from '../lib/config/model.js';
import { nodePrivateKeyFromWire, type NodeKeyWire, type NodePrivateKeyWire } from '../lib/node-keys.js';
import { checkKeysFolder, listPrivateKeyFiles, removePrivateKeyFile, writePrivateKeyFile } from '../lib/node-key-files.js';
import { answerError, type RegistryClient } from '../lib/registry-client.js';

const FETCH_TIMEOUT_MS = 30_000;
const MAX_ANSWER = 1024 * 1024;

export interface KeySyncResult {
  written: string[];
  removed: string[];
}

export class NodeKeySync {
  readonly #dir: string;
  readonly #node: string;
  readonly #client: RegistryClient;
  readonly #log: Logger;

  constructor(home: Home, node: string, client: RegistryClient, log: Logger) {
    this.#dir = home.dir('keys');
    this.#node = node;
    this.#client = client;
    this.#log = log;
  }

  /** The pairs of this node a bundle lists. */
  #own(bundle: NodeBundle): NodeKeyWire[] {
    return (bundle.node_keys ?? []).filter((k) => k.node === this.#node);
  }

  /**
   * Make keys/ hold a private file for every pair of this node the bundle lists and that is still
   * accepted; remove the others. Throws IBP_ERR_AGENT_NODE_KEYS (the caller retries later).
   */
  async sync(bundle: NodeBundle, signal?: AbortSignal, now = Date.now()): Promise<KeySyncResult> {
    const own = this.#own(bundle);
    const removed = this.prune(bundle, now);
    checkKeysFolder(this.#dir, true);
    const have = new Set(listPrivateKeyFiles(this.#dir, this.#node));
    const missing = own.filter((k) => !have.has(k.kcv) && (k.disable_at === 0 || now < k.disable_at));
    if (missing.length === 0) return { written: [], removed };
    const got = await this.#fetch(signal);
    const byKcv = new Map(got.map((k) => [k.kcv, k]));
    const written: string[] = [];
    for (const want of missing) {
      const k = byKcv.get(want.kcv);
      if (!k) throw new IbpError('IBP_ERR_AGENT_NODE_KEYS', { node: this.#node, detail: `ibms sent no private key for kcv ${want.kcv} its bundle lists` });
      if (k.sign_public !== want.sign_public || k.agree_public !== want.agree_public) throw new IbpError('IBP_ERR_AGENT_NODE_KEYS', { node: this.#node, detail: `the private pair ${want.kcv} from ibms is not the public one of the bundle` });
      writePrivateKeyFile(this.#dir, k);
      written.push(k.kcv);
    }
    this.#log.info({ written }, `node private keys written , node[${this.#node}] kcv[${written.join(' ')}] dir[${this.#dir}]`);
    return { written, removed };
  }

  /**
   * Remove the private files of this node's pairs past their disable time, or no longer listed.
   * A bundle without any pair of this node (a registry from before node keys) removes nothing.
   */
  prune(bundle: NodeBundle, now = Date.now()): string[] {
    const own = this.#own(bundle);
    if (own.length === 0) return [];
    const listed = new Map(own.map((k) => [k.kcv, k]));
    const removed: string[] = [];
    for (const kcv of listPrivateKeyFiles(this.#dir, this.#node)) {
      const k = listed.get(kcv);
      if (k && (k.disable_at === 0 || now < k.disable_at)) continue;
      if (removePrivateKeyFile(this.#dir, this.#node, kcv)) removed.push(kcv);
    }
    if (removed.length > 0) this.#log.info({ removed }, `node private keys removed , node[${this.#node}] kcv[${removed.join(' ')}] , past their disable time or dropped by ibms`);
    return removed;
  }

  async #fetch(signal?: AbortSignal): Promise<NodePrivateKeyWire[]> {
    const what = `GET /v1/agent/node_keys/${this.#node}`;
    let keys: unknown;
    try {
      const ans = await this.#client.get(`/agent/node_keys/${encodeURIComponent(this.#node)}`, { signal, timeoutMs: FETCH_TIMEOUT_MS, maxSize: MAX_ANSWER });
      if (ans.status !== 200) throw answerError(ans, what);
      keys = (decodeJsonBody(ans.body, ans.headers.get('content-encoding') ?? undefined, MAX_ANSWER) as { keys?: unknown } | undefined)?.keys;
    } catch (e) {
      throw new IbpError('IBP_ERR_AGENT_NODE_KEYS', { node: this.#node, detail: errorText(e) }, { cause: e });
    }
    if (!Array.isArray(keys)) throw new IbpError('IBP_ERR_AGENT_NODE_KEYS', { node: this.#node, detail: `${what} answered no "keys" list` });
    return keys.map((k: NodePrivateKeyWire) => {
      try {
        if (k.node !== this.#node) throw new Error(`a pair of node ${String(k.node)}`);
        nodePrivateKeyFromWire(k);
        return k;
      } catch (e) {
        throw new IbpError('IBP_ERR_AGENT_NODE_KEYS', { node: this.#node, detail: `a bad pair from ibms: ${(e as Error).message}` });
      }
    });
  }
}

/**
 * The node keyring of a transaction end (ibac, ibas): {@link NodeKeyring} (lib/node-keys.ts) over the
 * config space ibma publishes (public pairs of the nodes with their enable/disable times, layout
 * NODE_KEY) and the local node's private key files ibma writes (`keys/<node>.<kcv>.prikey`,
 * lib/node-key-files.ts).
 *
 * Lock-free and cached: lookups go to a StaticKeyring built from one config segment. The keyring
 * follows the segment the ConfigSpace is attached to (its owner calls `checkSwitch()` as usual); on
 * the first lookup after a flip it is rebuilt (KeyObjects of pairs already seen are reused, private
 * files read once per pair). A pair of the local node whose private file is missing (ibma writes
 * it before it publishes, so only after a failed fetch) is retried at most once a second.
 * Times are never cached: every lookup takes `now`, so the sending key switches at the enable time
 * and a pair is refused after its disable time without any flip.
 *
 * Usage:
 *   const space = ConfigSpace.open(ibmaConf);             // or openKey(indexKey)
 *   const ring = openNodeKeyring({ space, home });          // localNode = the space's this_node
 *   ring.sendingKey(Date.now()); ring.peerKey(node, kcv, Date.now());
 */
import type { KeyObject } from 'node:crypto';
import { errorText } from './errors.js';
import type { Home } from './home.js';
import { nodeKeyFromWire, StaticKeyring, type NodeKeyring, type NodePrivateKey, type NodePublicKey, type PeerKeyLookup } from './node-keys.js';
import { readPrivateKeyFile } from './node-key-files.js';
import type { ConfigSpace, NodeKeyView } from './shm/config-space.js';

export interface NodeKeyringOptions {
  /** The node's config space; the keyring reads the segment it is attached to. */
  space: ConfigSpace;
  /** The node's home (private key files in its keys/), or give `keysDir`. */
  home?: Home;
  /** The folder of the private key files (default: keys/ of `home`). */
  keysDir?: string;
  /** The local node (default: this_node of the space). */
  localNode?: string;
}

/** How often a missing or unreadable private key file of a published pair is looked for again. */
const MISSING_RETRY_MS = 1000;

export class ConfigSpaceKeyring implements NodeKeyring {
  readonly localNode: string;
  readonly #space: ConfigSpace;
  readonly #dir: string;
  #ring: StaticKeyring;
  #builtKey = -1;
  #builtGeneration = -1;
  #retryAt = 0;
  /** Parsed public halves by node, kcv and both keys (reused across flips). */
  readonly #publics = new Map<string, { signPublicKey: KeyObject; agreePublicKey: KeyObject }>();
  /** Private halves by kcv of the local node (files are read once). */
  readonly #privates = new Map<string, { signPrivateKey: KeyObject; agreePrivateKey: KeyObject }>();
  /** What was wrong at the last rebuild (bad records, missing or refused private files); empty when all is well. */
  problems: string[] = [];

  constructor(opts: NodeKeyringOptions) {
    this.#space = opts.space;
    const dir = opts.keysDir ?? opts.home?.dir('keys');
    if (dir === undefined) throw new Error('openNodeKeyring: give home or keysDir');
    this.#dir = dir;
    this.localNode = opts.localNode ?? opts.space.header().thisNode;
    this.#ring = new StaticKeyring(this.localNode, [], []);
  }

  sendingKey(now: number): NodePrivateKey | undefined {
    return this.#current(now).sendingKey(now);
  }

  localKey(kcv: string, now: number): NodePrivateKey | undefined {
    return this.#current(now).localKey(kcv, now);
  }

  peerKey(node: string, kcv: string, now: number): PeerKeyLookup {
    return this.#current(now).peerKey(node, kcv, now);
  }

  peerSendingKey(node: string, now: number): NodePublicKey | undefined {
    return this.#current(now).peerSendingKey(node, now);
  }

  /** The pairs of the local node that have their private halves here (tools, tests). */
  localKeys(): readonly NodePrivateKey[] {
    this.#current(Date.now());
    return this.#own;
  }

  #own: NodePrivateKey[] = [];

  #current(now: number): StaticKeyring {
    const key = this.#space.key;
    const generation = this.#space.generation;
    if (key !== this.#builtKey || generation !== this.#builtGeneration || (this.#retryAt !== 0 && now >= this.#retryAt)) {
      this.#rebuild(this.#space.nodeKeys(), now);
      this.#builtKey = key;
      this.#builtGeneration = generation;
    }
    return this.#ring;
  }

  #rebuild(views: NodeKeyView[], now: number): void {
    const problems: string[] = [];
    const peers: NodePublicKey[] = [];
    const own: NodePrivateKey[] = [];
    for (const v of views) {
      const id = `${v.node}\0${v.kcv}\0${v.signPublic}\0${v.agreePublic}`;
      let pub = this.#publics.get(id);
      if (!pub) {
        try {
          const k = nodeKeyFromWire({ node: v.node, kcv: v.kcv, sign_public: v.signPublic, agree_public: v.agreePublic, enable_at: v.enableAt, disable_at: v.disableAt });
          pub = { signPublicKey: k.signPublicKey, agreePublicKey: k.agreePublicKey };
          this.#publics.set(id, pub);
        } catch (e) {
          problems.push(`node ${v.node} kcv ${v.kcv}: ${(e as Error).message}`);
          continue;
        }
      }
      const key: NodePublicKey = { node: v.node, kcv: v.kcv, ...pub, enableAt: v.enableAt, disableAt: v.disableAt };
      peers.push(key);
      if (v.node !== this.localNode) continue;
      let priv = this.#privates.get(v.kcv);
      if (!priv && (v.disableAt === 0 || now < v.disableAt)) {
        try {
          const k = readPrivateKeyFile(this.#dir, v.node, v.kcv);
          if (!k) problems.push(`node ${v.node} kcv ${v.kcv}: no private key file in ${this.#dir} (ibma writes it)`);
          else if (k.signPublicKey.equals(pub.signPublicKey) && k.agreePublicKey.equals(pub.agreePublicKey)) {
            priv = { signPrivateKey: k.signPrivateKey, agreePrivateKey: k.agreePrivateKey };
            this.#privates.set(v.kcv, priv);
          } else problems.push(`node ${v.node} kcv ${v.kcv}: the private key file is not the published pair`);
        } catch (e) {
          problems.push(errorText(e));
        }
      }
      if (priv) own.push({ ...key, ...priv });
    }
    const published = new Set(views.filter((v) => v.node === this.localNode).map((v) => v.kcv));
    for (const kcv of this.#privates.keys()) if (!published.has(kcv)) this.#privates.delete(kcv);
    this.#ring = new StaticKeyring(this.localNode, own, peers);
    this.#own = own;
    this.problems = problems;
    this.#retryAt = problems.length > 0 ? now + MISSING_RETRY_MS : 0;
  }
}

/** The keyring of the node whose config space this is (see the file comment). */
export function openNodeKeyring(opts: NodeKeyringOptions): ConfigSpaceKeyring {
  return new ConfigSpaceKeyring(opts);
}

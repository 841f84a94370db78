/**
 * The reader of the config space (ibac, ibas, `ibma -s`): IBP's IBMAOpenConfigSpace /
 * IBMACheckConfigSpaceAttaching / IBMAQueryNode … as one class.
 *
 * open() reads the index segment and attaches the config segment it points to. The attached
 * segment never changes under a reader (the writer builds a new one and flips the index), so
 * lookups need no lock: a reader that has not called checkSwitch() keeps reading the old,
 * consistent data. checkSwitch() attaches the newest segment and detaches the old one, which the
 * writer removes once nobody is attached.
 *
 * Lookups go through the hash tables in the shared bytes and decode only the record returned
 * (lib/shm/config-view.ts). Host load and retry-connect time are written with ONE compare-and-swap
 * each: a lost update is accepted, as in IBP.
 */
import { IbpError } from '../errors.js';
import { readIndexKey } from '../config/ibma-index-key.js';
import { attachShared, releaseShared } from './attachments.js';
import { ConfigView, type AppView, type HostView, type NodeKeyView, type NodeView, type SpaceHeader } from './config-view.js';
import { IndexSegment } from './index-segment.js';
import { shmidOf } from './sysv.js';

export type { AppView, HostView, NodeKeyView, NodeView, SpaceHeader } from './config-view.js';

/** Attempts to catch a consistent (index word, segment) pair while the writer flips and collects. */
const ATTACH_ATTEMPTS = 8;
/** How long a closed reader keeps the current segment mapped, in case the process opens it again. */
const CLOSE_LINGER_MS = 1000;

export class ConfigSpace {
  readonly indexKey: number;
  #index: IndexSegment;
  #view: ConfigView | undefined;
  /** shmid of the index segment the current view was found through. */
  #viewIndex: number;

  private constructor(indexKey: number, index: IndexSegment, view: ConfigView) {
    this.indexKey = indexKey;
    this.#index = index;
    this.#view = view;
    this.#viewIndex = index.shmid;
  }

  /**
   * Open the config space of the node whose ibma.conf this is (its shm.index_key, read without
   * validating the rest of the file: lib/config/ibma-index-key.ts).
   */
  static open(ibmaConfFile: string): ConfigSpace {
    return ConfigSpace.openKey(readIndexKey(ibmaConfFile));
  }

  /** Open the config space at an index key; IBP_ERR_SHM_NO_SPACE when nothing is published there. */
  static openKey(indexKey: number): ConfigSpace {
    if (!Number.isInteger(indexKey) || indexKey < 1 || indexKey > 0x7fffffff) {
      throw new IbpError('IBP_ERR_SHM_ARG', { arg: 'index key', detail: `${indexKey} is not a positive 31-bit integer` });
    }
    const index = IndexSegment.attach(indexKey);
    if (!index) throw new IbpError('IBP_ERR_SHM_NO_SPACE', { key: indexKey });
    try {
      const view = attachCurrent(index);
      if (!view) throw new IbpError('IBP_ERR_SHM_NO_SPACE', { key: indexKey });
      return new ConfigSpace(indexKey, index, view);
    } catch (e) {
      index.close();
      throw e;
    }
  }

  /**
   * Attach the newest config segment if the index moved (also when ibma re-created the index
   * segment), and detach the old one. Returns whether it switched. While the index is gone (ibma
   * stopped cleanly) the reader keeps its segment.
   */
  checkSwitch(): boolean {
    const view = this.#live();
    const id = shmidOf(this.indexKey);
    if (id >= 0 && id !== this.#index.shmid) {
      let fresh: IndexSegment | undefined;
      try {
        fresh = IndexSegment.attach(this.indexKey);
      } catch {
        fresh = undefined; // being re-created right now: next time
      }
      if (fresh) {
        this.#index.close();
        this.#index = fresh;
      }
    }
    const { key, generation } = this.#index.read();
    if (key === 0) return false;
    if (this.#viewIndex === this.#index.shmid && key === view.key && generation === view.generation) return false;
    let next: ConfigView | undefined;
    try {
      next = attachCurrent(this.#index);
    } catch {
      next = undefined;
    }
    if (!next) return false;
    this.#viewIndex = this.#index.shmid;
    if (next.seg === view.seg) {
      releaseShared(next.seg); // the same attachment, counted twice
      return false;
    }
    this.#view = next;
    releaseShared(view.seg);
    return true;
  }

  /**
   * Whether the index word names another segment than the one this reader uses: one atomic load,
   * cheap enough before every transaction. (A re-created index segment is only seen by
   * checkSwitch.)
   */
  moved(): boolean {
    const view = this.#view;
    if (!view) return false;
    const { key, generation } = this.#index.read();
    return key !== 0 && (key !== view.key || generation !== view.generation);
  }

  get generation(): number {
    return this.#live().generation;
  }

  /** Key of the config segment this reader is attached to. */
  get key(): number {
    return this.#live().key;
  }

  /** What the index segment says now (it may be ahead of this reader until checkSwitch). */
  indexInfo(): { key: number; generation: number; writerPid: number; publishedAt: number } {
    this.#live();
    return { ...this.#index.read(), writerPid: this.#index.writerPid(), publishedAt: this.#index.publishedAt() };
  }

  header(): SpaceHeader {
    return this.#live().header();
  }

  node(name: string): NodeView | undefined {
    return this.#live().node(name);
  }

  nodes(): NodeView[] {
    return this.#live().nodes();
  }

  hosts(node: string): HostView[] {
    return this.#live().hosts(node);
  }

  app(code: string): AppView | undefined {
    return this.#live().app(code);
  }

  apps(): AppView[] {
    return this.#live().apps();
  }

  kvs(node: string): [string, string][] {
    return this.#live().kvs(node);
  }

  kv(node: string, key: string): string | undefined {
    return this.#live().kv(node, key);
  }

  /** Every node's public key pairs with their enable/disable times (lib/node-keyring.ts reads them). */
  nodeKeys(): NodeKeyView[] {
    return this.#live().nodeKeys();
  }

  getHostLoad(hostIndex: number): number {
    return this.#live().getHostLoad(hostIndex);
  }

  /** ONE Atomics.compareExchange: true when the load was `expected` and is now `value`. */
  setHostLoad(hostIndex: number, expected: number, value: number): boolean {
    return this.#live().setHostLoad(hostIndex, expected, value);
  }

  /** ms since the epoch until which connects to the host are suspended; 0 = not suspended. */
  getRetryAt(hostIndex: number): number {
    return this.#live().getRetryAt(hostIndex);
  }

  /** ONE compare-and-swap of the retry-connect time. */
  setRetryAt(hostIndex: number, expected: number, value: number): boolean {
    return this.#live().setRetryAt(hostIndex, expected, value);
  }

  get closed(): boolean {
    return this.#view === undefined;
  }

  /**
   * Detach the config segment (the index segment stays mapped until exit). A segment that is still
   * the current one lingers CLOSE_LINGER_MS first, so a process that opens and closes the space per
   * call re-uses one mapping (lib/shm/attachments.ts, trap 4). Idempotent.
   */
  close(): void {
    const view = this.#view;
    if (!view) return;
    this.#view = undefined;
    const { key, generation } = this.#index.read();
    const current = key === view.key && generation === view.generation && shmidOf(this.indexKey) === this.#index.shmid;
    releaseShared(view.seg, current ? CLOSE_LINGER_MS : 0);
    this.#index.close();
  }

  #live(): ConfigView {
    if (!this.#view) throw new IbpError('IBP_ERR_SHM_ARG', { arg: 'config space', detail: 'it is closed (open it again)' });
    return this.#view;
  }
}

/**
 * Attach the segment the index points to and check that it is the publication the index names
 * (same generation, complete). Retries while the writer flips or collects underneath. Undefined
 * when nothing was published.
 */
function attachCurrent(index: IndexSegment): ConfigView | undefined {
  let last: unknown;
  for (let attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
    const { key, generation } = index.read();
    if (key === 0) return undefined;
    const seg = attachShared(key);
    if (!seg) continue; // collected between the read and the attach: read the index again
    let view: ConfigView;
    try {
      view = new ConfigView(seg);
    } catch (e) {
      releaseShared(seg);
      last = e;
      continue;
    }
    if (view.generation === generation) return view;
    releaseShared(seg);
  }
  if (last) throw last;
  throw new IbpError('IBP_ERR_SHM_NO_SPACE', { key: index.key });
}

/**
 * Config versions of the nodes, the list of nodes changed since the last distribution, and the
 * blocking watches of agents (Consul-style: `index` = last version seen, `wait` = longest hold).
 *
 * - Versions come from one counter, so they never go backwards within an epoch. At start every
 *   known node has version 1; a node added later has 0 until it is first distributed.
 * - The epoch names this copy of the registry's data. It is new at every start of the worker:
 *   a restart may have lost unsaved changes or loaded an older copy, so agents must not compare
 *   versions across epochs. An agent presenting another epoch, or any version other than the
 *   current one (older OR newer), is answered at once, so a registry restored from an older copy
 *   never makes agents hang (index ahead of the registry) or spin (index never matching).
 */
import crypto from 'node:crypto';

/** Called with whether the version changed (false: the registry is stopping). */
type Waiter = (changed: boolean) => void;

export function newEpoch(): string {
  return `${Date.now().toString(36)}-${crypto.randomBytes(6).toString('hex')}`;
}

export class Versions {
  readonly epoch: string;
  #seq = 1;
  readonly #versions = new Map<string, number>();
  readonly #changed = new Set<string>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #closed = false;

  constructor(nodes: Iterable<string>, epoch = newEpoch()) {
    this.epoch = epoch;
    for (const n of nodes) this.#versions.set(n, 1);
  }

  /** Current version of a node (0 when it was never distributed). */
  version(node: string): number {
    return this.#versions.get(node) ?? 0;
  }

  /** Record nodes touched by a change (shown by `-s nodes_changed` until distributed). */
  markChanged(nodes: Iterable<string>): void {
    for (const n of nodes) this.#changed.add(n);
  }

  changed(): string[] {
    return [...this.#changed];
  }

  #bump(node: string): number {
    const v = ++this.#seq;
    this.#versions.set(node, v);
    this.#wake(node);
    return v;
  }

  /** Give every changed node a new version and clear the list (`-a distribute_config`). */
  distribute(): { node: string; version: number }[] {
    const out = [...this.#changed].map((node) => ({ node, version: this.#bump(node) }));
    this.#changed.clear();
    return out;
  }

  /** Give only these nodes a new version now (the package watcher's immediate distribution). */
  distributeNodes(nodes: Iterable<string>): { node: string; version: number }[] {
    const out: { node: string; version: number }[] = [];
    for (const node of nodes) {
      this.#changed.delete(node);
      out.push({ node, version: this.#bump(node) });
    }
    return out;
  }

  /** Force one node (`-a download_config --node N`). */
  download(node: string): number {
    this.#changed.delete(node);
    return this.#bump(node);
  }

  /** A removed node: forget it and wake its watchers (they then learn it is gone). */
  drop(node: string): void {
    this.#versions.delete(node);
    this.#changed.delete(node);
    this.#wake(node);
  }

  #wake(node: string, changed = true): void {
    const ws = this.#waiters.get(node);
    if (!ws) return;
    this.#waiters.delete(node);
    for (const w of ws) w(changed);
  }

  /** Whether a watch with this index and epoch would be answered at once. */
  isCurrent(node: string, index: number, epoch: string): boolean {
    return !this.#closed && epoch === this.epoch && index === this.version(node);
  }

  /**
   * Wait until the node's version differs from `index` (or the epoch differs), at most `waitMs`;
   * `signal` ends the wait early (the client went away). Resolves with whether it changed.
   */
  wait(node: string, index: number, epoch: string, waitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.isCurrent(node, index, epoch)) return Promise.resolve(true);
    if (waitMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let ws = this.#waiters.get(node);
      if (!ws) this.#waiters.set(node, (ws = new Set()));
      const done = (changed: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const set = this.#waiters.get(node);
        if (set) {
          set.delete(waiter);
          if (set.size === 0) this.#waiters.delete(node);
        }
        resolve(changed);
      };
      const waiter: Waiter = (changed) => done(changed);
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.add(waiter);
    });
  }

  /** Number of watches held now (all nodes, or one). */
  waiting(node?: string): number {
    if (node !== undefined) return this.#waiters.get(node)?.size ?? 0;
    let n = 0;
    for (const ws of this.#waiters.values()) n += ws.size;
    return n;
  }

  /** Stopping: answer every held watch now and every later one at once. */
  close(): void {
    this.#closed = true;
    for (const node of [...this.#waiters.keys()]) this.#wake(node, false);
  }
}

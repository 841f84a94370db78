/**
 * Host choice (IBP §2.4.4): which host of a node a new connection goes to.
 *
 *   1. the node's hosts from the client's config space (lib/shm/config-space.ts);
 *   2. skip hosts marked invalid and hosts suspended until their retry-connect time (RETRY_AT);
 *   3. take the least loaded by the load the servers reported (LOAD), ties broken at random;
 *      with a small probability (`explore`, default 1/32) take any usable host instead, so that a
 *      host whose last reported load was high is looked at again once it has calmed down (a load
 *      is only refreshed by answers from that host);
 *   4. every answer of a server carries its load (workers busy / workers alive): it is written to
 *      the host's LOAD with ONE compare-and-swap — lost to a concurrent writer, it is dropped, as
 *      in IBP;
 *   5. a failed or timed-out connect suspends the host until now + retry_connect_timeval (ONE CAS)
 *      and the caller tries the next host.
 *
 * A host's slot in the segment changes when the reader switches to a newer config segment, so
 * hosts are named by node + ip:port and their slot is looked up again for every write (cached
 * per generation).
 */
import type { ConfigSpace, HostView } from '../lib/shm/config-space.js';
import type { Load } from '../lib/protocol/codec.js';
import { NoHostError } from './errors.js';

/** LOAD holds working / total in units of 1/LOAD_SCALE (10000 = every worker busy). */
export const LOAD_SCALE = 10000;

/** The value written to shm for a reported load. A server with no worker alive counts as full. */
export function loadValue(load: Load): number {
  if (load.total <= 0) return LOAD_SCALE;
  return Math.min(LOAD_SCALE, Math.round((load.working * LOAD_SCALE) / load.total));
}

export interface HostChoice {
  node: string;
  ip: string;
  port: number;
  /** "ip:port" */
  key: string;
  /** Load value when chosen (see {@link loadValue}). */
  load: number;
}

/** A host as `hosts()` reports it (for ops and tests). */
export interface HostState {
  ip: string;
  port: number;
  key: string;
  invalid: boolean;
  load: number;
  /** ms since the epoch until which connects are suspended; 0 = not suspended. */
  retryAt: number;
  usable: boolean;
}

export interface BalancerOptions {
  /** How long a host stays suspended after a failed connect, ms. */
  retryConnectMs: number;
  /** Probability of picking any usable host instead of the least loaded (0 … 1). */
  explore?: number;
  /** Source of randomness (tests pass a seeded one). */
  random?: () => number;
}

export interface ChooseOptions {
  /** Hosts ("ip:port") already tried by this call. */
  exclude?: ReadonlySet<string>;
  /** Only this host ("ip:port"), whatever its load or suspension (ops: `ibpsend --host`). */
  pin?: string;
  now?: number;
}

export class Balancer {
  readonly #space: ConfigSpace;
  readonly #retryMs: number;
  readonly #explore: number;
  readonly #random: () => number;
  #generation = -1;
  readonly #slots = new Map<string, number>();

  constructor(space: ConfigSpace, opts: BalancerOptions) {
    this.#space = space;
    this.#retryMs = opts.retryConnectMs;
    this.#explore = Math.min(Math.max(opts.explore ?? 1 / 32, 0), 1);
    this.#random = opts.random ?? Math.random;
  }

  /** The hosts of a node; throws IBP_ERR_CLIENT_NODE_UNKNOWN / _NODE_INVALID. */
  hostsOf(node: string): HostView[] {
    const n = this.#space.node(node);
    if (!n) throw new NoHostError('IBP_ERR_CLIENT_NODE_UNKNOWN', { node, thisNode: this.#space.header().thisNode }, { node });
    if (n.invalid) throw new NoHostError('IBP_ERR_CLIENT_NODE_INVALID', { node }, { node });
    return this.#space.hosts(node);
  }

  /** Every host of the node with its load and suspension. */
  states(node: string, now = Date.now()): HostState[] {
    return this.hostsOf(node).map((h) => {
      const retryAt = this.#space.getRetryAt(h.index);
      const invalid = h.invalid !== 0;
      return { ip: h.ip, port: h.port, key: `${h.ip}:${h.port}`, invalid, load: this.#space.getHostLoad(h.index), retryAt, usable: !invalid && retryAt <= now };
    });
  }

  /** Pick the host for a new connection; throws IBP_ERR_CLIENT_NO_HOST when none is usable. */
  choose(node: string, opts: ChooseOptions = {}): HostChoice {
    const hosts = this.hostsOf(node);
    const now = opts.now ?? Date.now();
    if (opts.pin !== undefined) {
      const h = hosts.find((x) => `${x.ip}:${x.port}` === opts.pin);
      if (!h) throw new NoHostError('IBP_ERR_CLIENT_NO_HOST', { node: `${node} (host ${opts.pin} is not one of its hosts)` }, { node, host: opts.pin });
      return this.#choice(node, h);
    }
    const usable = hosts.filter((h) => !h.invalid && !opts.exclude?.has(`${h.ip}:${h.port}`) && this.#space.getRetryAt(h.index) <= now);
    if (usable.length === 0) {
      const detail = hosts.length === 0 ? `${node} (it has no host)` : node;
      throw new NoHostError('IBP_ERR_CLIENT_NO_HOST', { node: detail }, { node });
    }
    if (usable.length > 1 && this.#explore > 0 && this.#random() < this.#explore) {
      return this.#choice(node, usable[Math.floor(this.#random() * usable.length)]!);
    }
    let best: HostView[] = [];
    let bestLoad = Infinity;
    for (const h of usable) {
      const load = this.#space.getHostLoad(h.index);
      if (load < bestLoad) {
        bestLoad = load;
        best = [h];
      } else if (load === bestLoad) {
        best.push(h);
      }
    }
    return this.#choice(node, best.length === 1 ? best[0]! : best[Math.floor(this.#random() * best.length)]!);
  }

  /** Write a reported load with ONE compare-and-swap; false when lost (or the host is gone). */
  report(node: string, ip: string, port: number, load: Load): boolean {
    const slot = this.#slot(node, ip, port);
    if (slot === undefined) return false;
    const value = loadValue(load);
    const seen = this.#space.getHostLoad(slot);
    if (seen === value) return true;
    return this.#space.setHostLoad(slot, seen, value);
  }

  /** Suspend a host for retry_connect_timeval after a failed connect (ONE compare-and-swap). */
  suspend(node: string, ip: string, port: number, now = Date.now()): number {
    const slot = this.#slot(node, ip, port);
    if (slot === undefined) return 0;
    const until = now + this.#retryMs;
    const seen = this.#space.getRetryAt(slot);
    if (seen >= until) return seen;
    return this.#space.setRetryAt(slot, seen, until) ? until : this.#space.getRetryAt(slot);
  }

  #choice(node: string, h: HostView): HostChoice {
    return { node, ip: h.ip, port: h.port, key: `${h.ip}:${h.port}`, load: this.#space.getHostLoad(h.index) };
  }

  /** The host's slot in the segment the reader is attached to now. */
  #slot(node: string, ip: string, port: number): number | undefined {
    const generation = this.#space.generation;
    if (generation !== this.#generation) {
      this.#slots.clear();
      this.#generation = generation;
    }
    const key = `${node}\0${ip}:${port}`;
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      const n = this.#space.node(node);
      if (!n) return undefined;
      slot = this.#space.hosts(node).find((h) => h.ip === ip && h.port === port)?.index;
      if (slot === undefined) return undefined;
      this.#slots.set(key, slot);
    }
    return slot;
  }
}

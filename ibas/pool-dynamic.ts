/**
 * DYNAMIC_WORKERPOOL: a static pool whose size follows the load. Every adjust_interval the idle
 * workers (IDLE, LISTEN, STARTING: able to take the next connection) are counted:
 *
 *   idle < min_idle_count   spawn min(create_interval, min_idle_count − idle, max_count − live)
 *   every live worker held  spawn one (held: READING / KEEPALIVE, a connection that runs no
 *                           transaction: slow or idle clients must not starve new callers)
 *   idle > max_idle_count   retire min(destroy_interval, idle − max_idle_count) idle workers
 *                           (IDLE before LISTEN: the leader keeps its place), never below one
 *
 * The pool starts with max(min_idle_count, 1) workers and never has more than max_count. Dead
 * workers are not replaced one for one: the next adjustment decides.
 */
import { HELD_STATES, type WorkerState } from './scoreboard.js';
import type { PoolHost, PoolPolicy, WorkerRecord } from './pool.js';

const IDLE_STATES: ReadonlySet<WorkerState> = new Set(['IDLE', 'LISTEN', 'STARTING']);

export interface Adjustment {
  idle: number;
  live: number;
  spawned: number;
  retired: number;
}

export class DynamicPool implements PoolPolicy {
  readonly mode = 'DYNAMIC_WORKERPOOL' as const;
  readonly #adjustMs: number;
  #last = 0;
  #atMax = false;
  /** The last adjustment that changed something (for tests and logs). */
  last: Adjustment | undefined;

  constructor(adjustMs: number) {
    this.#adjustMs = adjustMs;
  }

  start(host: PoolHost): void {
    const d = host.conf.mpm.DYNAMIC_WORKERPOOL;
    const first = Math.min(Math.max(d.min_idle_count, 1), host.conf.mpm.max_count);
    for (let i = 0; i < first; i++) host.spawnWorker('pool');
    this.#last = Date.now();
  }

  maintain(host: PoolHost, now: number): void {
    const live = host.liveWorkers();
    if (live.length === 0) {
      host.spawnWorker('pool'); // never a pool of none
      return;
    }
    if (now - this.#last < this.#adjustMs) return;
    this.#last = now;
    const d = host.conf.mpm.DYNAMIC_WORKERPOOL;
    const max = host.conf.mpm.max_count;
    const states = new Map<WorkerRecord, WorkerState>(live.map((w) => [w, host.scoreboard.stateOf(w.index)]));
    const idle = [...states.values()].filter((s) => IDLE_STATES.has(s)).length;
    let spawned = 0;
    let retired = 0;
    const allHeld = [...states.values()].every((s) => HELD_STATES.has(s));
    if (idle < d.min_idle_count || allHeld) {
      const n = Math.min(d.create_interval, Math.max(d.min_idle_count - idle, allHeld ? 1 : 0), max - live.length);
      for (let i = 0; i < n; i++) if (host.spawnWorker('pool')) spawned++;
      if (n <= 0 && !this.#atMax) host.log.warn(`dynamic pool at max_count , workers[${live.length}] max_count[${max}] idle[${idle}]`);
      this.#atMax = n <= 0;
    } else if (idle > d.max_idle_count) {
      this.#atMax = false;
      const n = Math.min(d.destroy_interval, idle - d.max_idle_count, live.length - 1);
      const order = (s: WorkerState): number => (s === 'IDLE' ? 0 : s === 'STARTING' ? 1 : 2);
      const victims = live.filter((w) => IDLE_STATES.has(states.get(w)!)).sort((a, b) => order(states.get(a)!) - order(states.get(b)!)).slice(0, Math.max(n, 0));
      for (const w of victims) {
        host.retireWorker(w, `dynamic pool shrinks (idle ${idle} > max_idle_count ${d.max_idle_count})`);
        retired++;
      }
    } else {
      this.#atMax = false;
    }
    if (spawned || retired) {
      this.last = { idle, live: live.length, spawned, retired };
      host.log.info(`dynamic pool adjusted , workers[${live.length}] idle[${idle}] spawned[${spawned}] retired[${retired}]`);
    }
  }

  stop(): void {}
}

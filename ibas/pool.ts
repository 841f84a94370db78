/**
 * What a pool policy (static, dynamic, FORK) sees of the manager, and what it must provide. One
 * interface for the three modes (Node cluster's shared_handle / round_robin_handle idea): the
 * manager calls `maintain` on every tick after signals, reaping and timeouts.
 */
import type { Logger } from '../lib/log.js';
import type { IbasConf } from '../lib/config/ibas-conf.js';
import type { Scoreboard } from './scoreboard.js';

export interface WorkerRecord {
  pid: number;
  index: number;
  generation: number;
  kind: 'pool' | 'fork';
  spawnedAt: number;
  /** Why the manager asked it to go (SIGTERM sent), when it did. */
  retiring?: string;
}

export interface PoolHost {
  readonly conf: IbasConf;
  readonly log: Logger;
  readonly scoreboard: Scoreboard;
  readonly listenFd: number;
  /** Workers not asked to go. */
  liveWorkers(): WorkerRecord[];
  /** Spawn a worker into a free slot; `connFd` for a FORK worker. Undefined when no slot is free. */
  spawnWorker(kind: 'pool' | 'fork', connFd?: number): WorkerRecord | undefined;
  /** Why no worker may be spawned now (CHILD_SICK back-off, restart budget, stopping), or undefined. */
  spawnBlocked(): string | undefined;
  /** Ask a worker to go (SIGTERM: it leaves between transactions). */
  retireWorker(w: WorkerRecord, reason: string): void;
  /** True once a stop began. */
  readonly stopping: boolean;
  /** Wake the manager's tick now (a FORK worker exited, a connection came). */
  kick(): void;
}

export interface PoolPolicy {
  readonly mode: IbasConf['mpm']['mode'];
  /** Start: spawn the first workers (or the FORK accept loop). */
  start(host: PoolHost): void;
  /** Every tick while not stopping. */
  maintain(host: PoolHost, now: number): void;
  /** Stop taking new work (FORK: stop accepting). */
  stop(): void;
  /** A worker exited (reaped). */
  exited?(w: WorkerRecord): void;
}

/**
 * STATIC_WORKERPOOL: max_count workers, always. A worker that exits — crash, kill, recycling —
 * is replaced on the next tick (the manager ticks at once after a reap).
 */
import type { PoolHost, PoolPolicy } from './pool.js';

export class StaticPool implements PoolPolicy {
  readonly mode = 'STATIC_WORKERPOOL' as const;

  start(host: PoolHost): void {
    this.maintain(host);
  }

  maintain(host: PoolHost): void {
    const missing = host.conf.mpm.max_count - host.liveWorkers().length;
    for (let i = 0; i < missing; i++) {
      if (!host.spawnWorker('pool')) break;
    }
  }

  stop(): void {}
}

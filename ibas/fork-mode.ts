/**
 * FORK: the manager accepts (poll + accept4 on its own listen fd, no accept lock needed) and
 * spawns a short-lived worker for each connection, handing it the connection as fd 3; the worker
 * serves that connection and exits. At most max_count such workers run at once: while the limit
 * is reached the manager does not accept, and new connections wait in the listen backlog.
 */
import { errorText } from '../lib/errors.js';
import { acceptOne, closeFdQuietly } from './accept.js';
import type { PoolHost, PoolPolicy } from './pool.js';

export class ForkMode implements PoolPolicy {
  readonly mode = 'FORK' as const;
  #stopped = false;
  #wake: (() => void) | undefined;

  start(host: PoolHost): void {
    void this.#acceptLoop(host);
  }

  maintain(): void {}

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  exited(): void {
    this.#wake?.();
  }

  async #acceptLoop(host: PoolHost): Promise<void> {
    while (!this.#stopped) {
      // at the limit, or spawning held (sick back-off, restart budget): connections wait in the backlog
      if (host.liveWorkers().length >= host.conf.mpm.max_count || host.spawnBlocked() !== undefined) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, 200).unref();
        });
        this.#wake = undefined;
        continue;
      }
      let fd = -1;
      try {
        fd = await acceptOne(host.listenFd, () => this.#stopped, 250);
      } catch (e) {
        host.log.error(`accept failed , reason[${errorText(e)}]`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (fd < 0) continue;
      try {
        const w = host.spawnWorker('fork', fd);
        if (!w) host.log.error(`no FORK worker for a connection (${host.spawnBlocked() ?? 'no free scoreboard slot'}): connection closed`);
      } finally {
        closeFdQuietly(fd); // the worker has its own copy
      }
    }
  }
}

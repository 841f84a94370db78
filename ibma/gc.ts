/**
 * Periodic removal of old config segments (IBP: "维护着一组配置共享内存信息链，并周期性检查老版配置共享内存
 * 如果没有其它应用连接就删除清理"). Every `gc_interval` the writer checks the attach count of each old
 * segment (shmctl IPC_STAT through koffi) and removes those that nobody but the agent holds.
 */
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { ConfigSpaceWriter } from '../lib/shm/config-segment.js';

export class GarbageCollector {
  readonly #writer: ConfigSpaceWriter;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(writer: ConfigSpaceWriter, log: Logger) {
    this.#writer = writer;
    this.#log = log;
  }

  start(periodMs: number): void {
    this.stop();
    this.#timer = setInterval(() => this.collect(), periodMs);
    this.#timer.unref();
  }

  /** One pass; returns the removed keys. */
  collect(): number[] {
    try {
      const removed = this.#writer.collectGarbage();
      if (removed.length > 0) {
        this.#log.info({ removed, left: this.#writer.oldSegments() }, `old config segments removed , keys[${removed.map((k) => `0x${k.toString(16)}`).join(' ')}] still_attached[${this.#writer.oldSegments().length}]`);
      }
      return removed;
    } catch (e) {
      this.#log.error({ err: errorText(e) }, `collecting old config segments failed , reason[${errorText(e)}]`);
      return [];
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

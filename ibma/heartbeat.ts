/**
 * The agent's heartbeat: `POST /v1/agent/heartbeat {role:'ibma', node, pid}` every
 * `heartbeat_interval`, so that `ibms -s sessions` lists the agent even between watches. A failed
 * heartbeat is only logged at debug level: the watch loop already reports an unreachable ibms.
 */
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { answerError, type RegistryClient } from './registry-client.js';

export class Heartbeat {
  readonly #client: RegistryClient;
  readonly #node: string;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #abort = new AbortController();

  constructor(client: RegistryClient, node: string, log: Logger) {
    this.#client = client;
    this.#node = node;
    this.#log = log;
  }

  start(periodMs: number): void {
    this.stop();
    this.#abort = new AbortController();
    void this.beat(periodMs);
    this.#timer = setInterval(() => void this.beat(periodMs), periodMs);
    this.#timer.unref();
  }

  /** Send one heartbeat; resolves true when ibms took it. */
  async beat(periodMs = 5000): Promise<boolean> {
    if (this.#inFlight) return false;
    this.#inFlight = true;
    try {
      const ans = await this.#client.post('/agent/heartbeat', { role: 'ibma', node: this.#node, pid: process.pid }, { signal: this.#abort.signal, timeoutMs: Math.max(1000, periodMs), maxSize: 64 * 1024 });
      if (ans.status >= 300) throw answerError(ans, 'heartbeat');
      return true;
    } catch (e) {
      if (!this.#abort.signal.aborted) this.#log.debug({ err: errorText(e) }, `heartbeat failed , reason[${errorText(e)}]`);
      return false;
    } finally {
      this.#inFlight = false;
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
  }
}

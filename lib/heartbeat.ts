/**
 * Heartbeats to ibms: `POST /v1/agent/heartbeat` with the node credential every period, so that
 * `ibms -s sessions` lists the process (an agent between its watches, a server with its load).
 * One beat in flight at a time; a failure never stops the daemon: it is logged once per outage
 * (at `failLevel`) and "ok again" when ibms answers again.
 */
import { errorText } from './errors.js';
import type { Logger } from './log.js';
import { answerError, type RegistryClient } from './registry-client.js';

export interface HeartbeatOptions {
  client: RegistryClient;
  /** The body of each beat: `{role, node, pid, …}` (built per beat: a server's load changes). */
  body: () => Record<string, unknown>;
  log: Logger;
  /** Level of the "heartbeat failed" line: an agent's watch loop already reports an unreachable ibms. */
  failLevel?: 'debug' | 'warn';
}

export class Heartbeat {
  readonly #o: HeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #failing = false;
  #abort = new AbortController();

  constructor(o: HeartbeatOptions) {
    this.#o = o;
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
    const log = this.#o.log;
    try {
      const ans = await this.#o.client.post('/agent/heartbeat', this.#o.body(), {
        signal: this.#abort.signal,
        timeoutMs: Math.max(1000, Math.min(periodMs, 10_000)),
        maxSize: 64 * 1024,
      });
      if (ans.status >= 300) throw answerError(ans, 'heartbeat');
      if (this.#failing) log.info('heartbeat to ibms ok again');
      this.#failing = false;
      return true;
    } catch (e) {
      if (!this.#abort.signal.aborted && !this.#failing) {
        log[this.#o.failLevel ?? 'warn']({ err: errorText(e) }, `heartbeat to ibms failed , reason[${errorText(e)}] (logged once until it works again)`);
      }
      this.#failing = true;
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

  /**
   * A graceful stop: stop beating and end the session in ibms at once (`POST /agent/session/end`),
   * so `ibms -s sessions` does not list a stopped daemon for session.expire_seconds. Best effort,
   * bounded by `timeoutMs`; resolves true when ibms took it.
   */
  async end(timeoutMs = 1500): Promise<boolean> {
    this.stop();
    try {
      const { role, node, ip, port, pid } = this.#o.body() as { role: string; node: string; ip?: string; port?: number; pid: number };
      const ans = await this.#o.client.post('/agent/session/end', { role, node, ip, port, pid }, { timeoutMs, maxSize: 64 * 1024 });
      return ans.status < 300;
    } catch (e) {
      this.#o.log.debug({ err: errorText(e) }, `session end not sent , reason[${errorText(e)}] , it expires in ibms by itself`);
      return false;
    }
  }
}

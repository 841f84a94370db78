/**
 * The server's heartbeat to ibms: `POST /v1/agent/heartbeat {role:'ibas', node, ip, port, pid,
 * load}` every monitor.heartbeat_interval, with the node credential of the home's ibma.conf, so
 * `ibms -s sessions` lists this server. `load` is the number of workers busy with a connection
 * (the same `working` every answer carries). A failure is logged once per outage, not per beat:
 * ibas serves whether ibms is up or not.
 */
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { loadConfigFile } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import { RegistryClient, answerError } from '../ibma/registry-client.js';

export interface HeartbeatInfo {
  ip: string;
  port: number;
  load(): { working: number; total: number };
}

export class Heartbeat {
  readonly #client: RegistryClient;
  readonly #node: string;
  readonly #info: HeartbeatInfo;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #failing = false;
  readonly #abort = new AbortController();

  private constructor(client: RegistryClient, node: string, info: HeartbeatInfo, log: Logger) {
    this.#client = client;
    this.#node = node;
    this.#info = info;
    this.#log = log;
  }

  /** From the home's ibma.conf; undefined (logged) when it cannot be read. */
  static fromIbmaConf(file: string, info: HeartbeatInfo, log: Logger): Heartbeat | undefined {
    try {
      const c = loadConfigFile(IbmaConf, file, 'ibma');
      return new Heartbeat(new RegistryClient({ ip: c.ibms.ip, port: c.ibms.port, credential: c.credential }), c.this_node, info, log);
    } catch (e) {
      log.warn(`heartbeat to ibms disabled , reason[${errorText(e)}]`);
      return undefined;
    }
  }

  get node(): string {
    return this.#node;
  }

  start(periodMs: number): void {
    void this.beat(periodMs);
    this.#timer = setInterval(() => void this.beat(periodMs), periodMs);
    this.#timer.unref();
  }

  async beat(periodMs = 5000): Promise<boolean> {
    if (this.#inFlight) return false;
    this.#inFlight = true;
    try {
      const body = { role: 'ibas', node: this.#node, ip: this.#info.ip, port: this.#info.port, pid: process.pid, load: this.#info.load().working };
      const ans = await this.#client.post('/agent/heartbeat', body, { signal: this.#abort.signal, timeoutMs: Math.max(1000, Math.min(periodMs, 10_000)), maxSize: 64 * 1024 });
      if (ans.status >= 300) throw answerError(ans, 'heartbeat');
      if (this.#failing) this.#log.info('heartbeat to ibms ok again');
      this.#failing = false;
      return true;
    } catch (e) {
      if (!this.#abort.signal.aborted && !this.#failing) this.#log.warn(`heartbeat to ibms failed , reason[${errorText(e)}] (logged once until it works again)`);
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
}

/**
 * The node agent's main flow (IBP's 注册代理):
 *
 *   start ── [start_cleanly: remove leftover segments] ── attach/create the index segment
 *         ── last good bundle from the disk cache? publish it (the space exists: ready)
 *         (so/ must not be group/world-writable: refused at start; stale install temp files removed)
 *         ── watch ibms (blocking reads) ─┬─ new bundle: packages, node private keys → NEW segment → flip index → cache
 *                                          ├─ same version: nothing (retry failed packages)
 *                                          └─ failure: log, back off, reconnect
 *         ── every gc_interval: remove old segments nobody but the agent holds
 *         ── every heartbeat_interval: POST a heartbeat (ibms -s sessions)
 *         ── every gc_interval: remove private key files past their disable time (ibma/node-keys.ts)
 *   SIGTERM  ── stop: segments stay, clients keep reading them
 *   SIGUSR2  ── stop cleanly: remove every segment this agent made, and the index
 *
 * `start()` resolves once the config space exists, or, when ibms is down and there is no cached
 * config, once ibms has been retried (the agent keeps retrying in the background).
 */
import fs from 'node:fs';
import { errorText, IbpError, isIbpError } from '../lib/errors.js';
import type { Home } from '../lib/home.js';
import type { Logger } from '../lib/log.js';
import { agentTimings, type AgentTimings, type IbmaConf } from '../lib/config/ibma-conf.js';
import type { NodeBundle } from '../lib/config/model.js';
import { ConfigSpaceWriter } from '../lib/shm/config-segment.js';
import { cacheFile, loadCache, saveCache } from './cache.js';
import { removeSpace } from './cleanup.js';
import { GarbageCollector } from './gc.js';
import { Heartbeat } from '../lib/heartbeat.js';
import { PackageInstaller, packageRecordFile, type PackageResult } from './packages.js';
import { checkSoFolder, removeStaleTemps } from '../lib/so-folder.js';
import { Publisher } from './publish.js';
import { NodeKeySync } from './node-keys.js';
import { RegistryClient } from '../lib/registry-client.js';
import { stateFile, writeState, type AgentState, type IbmsLink } from './state-file.js';
import { Backoff, subscribe, type Held, type WatchResult } from './subscribe.js';

export interface AgentOptions {
  conf: IbmaConf;
  home: Home;
  log: Logger;
  /** start_cleanly: remove leftover index and config segments before starting. */
  cleanly?: boolean;
}

export type StopMode = 'keep-segments' | 'remove-segments';

/** Failed attempts before `start()` gives up waiting for ibms (when there is no cached config). */
const START_ATTEMPTS = 2;

export class Agent {
  readonly conf: IbmaConf;
  readonly home: Home;
  readonly log: Logger;
  readonly timings: AgentTimings;
  readonly client: RegistryClient;
  readonly #cleanly: boolean;
  readonly #abort = new AbortController();
  readonly #cacheFile: string;
  readonly #stateFile: string;
  #writer: ConfigSpaceWriter | undefined;
  #publisher: Publisher | undefined;
  #gc: GarbageCollector | undefined;
  #heartbeat: Heartbeat | undefined;
  #packages: PackageInstaller;
  #held: (Held & { bundle: NodeBundle }) | undefined;
  #packagesDirty = false;
  readonly #keys: NodeKeySync;
  /** The private keys of the held bundle are not all written yet: retried on every answer. */
  #keysDirty = false;
  #keyTimer: NodeJS.Timeout | undefined;
  /** What the current space announces as SHA256_NEXT ('' = nothing): see #syncPackages. */
  #announced = '';
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #state: AgentState;
  #firstRound: { resolve: () => void; reject: (e: unknown) => void } | undefined;

  constructor(opts: AgentOptions) {
    this.conf = opts.conf;
    this.home = opts.home;
    this.log = opts.log;
    this.timings = agentTimings(opts.conf);
    this.#cleanly = opts.cleanly ?? false;
    this.client = new RegistryClient({ ip: opts.conf.ibms.ip, port: opts.conf.ibms.port, credential: opts.conf.credential });
    this.#packages = new PackageInstaller(opts.home, this.client, opts.log, this.timings.maxPackageSize, packageRecordFile(opts.home, opts.conf.this_node));
    this.#keys = new NodeKeySync(opts.home, opts.conf.this_node, this.client, opts.log);
    this.#cacheFile = cacheFile(opts.home, opts.conf.this_node);
    this.#stateFile = stateFile(opts.home, opts.conf.this_node);
    this.#state = {
      pid: process.pid,
      node: opts.conf.this_node,
      ibms: { url: this.client.base, link: 'starting', since: Date.now(), failures: 0 },
      packages: { failed: [], installed: 0 },
    };
  }

  get writer(): ConfigSpaceWriter | undefined {
    return this.#writer;
  }

  /** What the agent holds and how its link to ibms is (ibma/metrics.ts, the state file). */
  get state(): Readonly<AgentState> {
    return this.#state;
  }

  /** Resolves when the agent serves (see the file comment); rejects when it cannot start at all. */
  async start(): Promise<void> {
    const indexKey = this.conf.shm.index_key;
    this.log.info({ ibms: this.client.base, indexKey }, `ibma starting , node[${this.conf.this_node}] ibms[${this.client.base}] index_key[0x${indexKey.toString(16)}]`);
    const soDir = this.home.dir('so');
    if (!fs.existsSync(soDir)) {
      fs.mkdirSync(soDir, { recursive: true, mode: 0o755 });
      fs.chmodSync(soDir, 0o755); // whatever the umask
    }
    checkSoFolder(soDir);
    const temps = removeStaleTemps(soDir);
    if (temps.length) this.log.info({ removed: temps }, `stale package temp files removed , count[${temps.length}]`);
    if (this.#cleanly) this.#removeLeftovers(indexKey);
    this.#writer = new ConfigSpaceWriter(indexKey);
    this.#publisher = new Publisher(this.#writer, this.conf, this.log);
    this.#gc = new GarbageCollector(this.#writer, this.log);
    this.#gc.start(this.timings.gcMs);
    this.#keyTimer = setInterval(() => this.#pruneKeys(), this.timings.gcMs);
    this.#keyTimer.unref();

    let fromCache = false;
    const cached = loadCache(this.#cacheFile, this.conf.this_node);
    if (cached.ok) {
      const b = cached.cached.bundle;
      try {
        this.#publish(await this.#packages.spaceBundle(b), 'cache');
        this.#hold(b, 'cache');
        this.#packagesDirty = true;
        this.#keysDirty = true;
        fromCache = true;
      } catch (e) {
        this.log.error({ err: errorText(e) }, `publishing the cached config failed , reason[${errorText(e)}] , waiting for ibms`);
      }
    } else {
      this.log.info({ reason: cached.reason }, `no cached config , reason[${cached.reason}]`);
    }
    this.#saveState();

    const firstRound = new Promise<void>((resolve, reject) => (this.#firstRound = { resolve, reject }));
    this.#heartbeat = new Heartbeat({ client: this.client, body: () => ({ role: 'ibma', node: this.conf.this_node, pid: process.pid, ...(this.#held ? { version: this.#held.version, epoch: this.#held.epoch } : {}) }), log: this.log, failLevel: 'debug' });
    this.#heartbeat.start(this.timings.heartbeatMs);
    this.#loop = this.#watch();
    if (fromCache) {
      this.#firstRound = undefined;
      return;
    }
    await firstRound;
  }

  /** Stop the loops; keep or remove the segments. Idempotent. */
  stop(mode: StopMode): Promise<void> {
    this.#stopping ??= this.#stop(mode);
    return this.#stopping;
  }

  async #stop(mode: StopMode): Promise<void> {
    this.log.info({ mode }, `ibma stopping , mode[${mode}]`);
    this.#abort.abort(new Error('ibma is stopping'));
    await this.#heartbeat?.end(); // the session ends in ibms now, not after expire_seconds
    this.#gc?.stop();
    if (this.#keyTimer) clearInterval(this.#keyTimer);
    if (this.#loop) await Promise.race([this.#loop, new Promise((r) => setTimeout(r, 5000).unref())]);
    if (this.#writer) {
      if (mode === 'remove-segments') {
        this.#writer.removeAll();
        this.log.info({}, 'config space removed (stop_cleanly)');
      } else {
        this.#writer.close();
      }
    }
    this.#firstRound?.reject(new Error('stopped before the first round'));
    this.log.info({ mode }, `ibma stopped , mode[${mode}]`);
  }

  #publish(bundle: NodeBundle, source: string): void {
    this.#publisher!.publish(bundle, source);
    this.#announced = '';
  }

  #removeLeftovers(indexKey: number): void {
    const removed = removeSpace(indexKey);
    this.log.info({ removed }, `start_cleanly: leftover segments removed , count[${removed.length}]`);
  }

  #hold(bundle: NodeBundle, source: 'ibms' | 'cache'): void {
    this.#held = { epoch: bundle.epoch, version: bundle.version, bundle };
    this.#state.flips = (this.#state.flips ?? 0) + 1;
    this.#state.held = { epoch: bundle.epoch, version: bundle.version, source };
    const p = this.#publisher?.last;
    if (p) this.#state.published = { key: p.key, generation: p.generation, at: p.at };
  }

  #link(link: IbmsLink, error?: unknown): void {
    const s = this.#state.ibms;
    if (s.link !== link) {
      s.link = link;
      s.since = Date.now();
    }
    if (error === undefined) {
      s.failures = 0;
      delete s.lastError;
    } else {
      s.failures++;
      s.lastError = errorText(error);
    }
    this.#saveState();
  }

  #saveState(): void {
    writeState(this.#stateFile, this.#state);
  }

  async #watch(): Promise<void> {
    const backoff = new Backoff(this.timings.reconnectMinMs, this.timings.reconnectMaxMs);
    let lastFailure = '';
    await subscribe(
      this.client,
      { node: this.conf.this_node, waitS: this.timings.watchWaitS, maxSize: this.timings.maxBundleSize, backoff, minRoundMs: this.timings.reconnectMinMs, signal: this.#abort.signal },
      {
        held: () => this.#held,
        onBundle: (b) => this.#apply(b),
        onAnswer: async (r) => this.#answered(r, () => (lastFailure = '')),
        onFailure: (e, attempt, delayMs) => {
          const text = errorText(e);
          const rejected = isIbpError(e, 'IBP_ERR_REG_ANSWER');
          this.#link(rejected ? 'rejected' : 'unreachable', e);
          const fields = { err: text, attempt, retryInMs: delayMs, holding: this.#held ? `${this.#held.epoch}/${this.#held.version}` : 'nothing' };
          const line = `${rejected ? 'ibms answer rejected' : 'ibms unreachable'} , attempt[${attempt}] retry_in_ms[${delayMs}] reason[${text}] , keeping ${this.#held ? `config version[${this.#held.version}]` : 'no config yet'}`;
          if (text !== lastFailure || attempt % 20 === 0) this.log.warn(fields, line);
          else this.log.info(fields, line);
          lastFailure = text;
          this.#firstFailure(e, attempt);
        },
      },
    );
  }

  #firstFailure(e: unknown, attempt: number): void {
    if (!this.#firstRound) return;
    if (isIbpError(e, 'IBP_ERR_REG_ANSWER') && e.params.status === 401) {
      this.#firstRound.reject(new IbpError('IBP_ERR_REG_AUTH', {}, { cause: e }));
      this.#firstRound = undefined;
      return;
    }
    if (attempt >= START_ATTEMPTS) {
      this.log.warn({ attempts: attempt }, `no config space yet: ibms not usable and no cached config , attempts[${attempt}] , retrying in the background`);
      this.#firstRound.resolve();
      this.#firstRound = undefined;
    }
  }

  async #answered(r: WatchResult, clearFailure: () => void): Promise<void> {
    const wasDown = this.#state.ibms.link !== 'connected';
    if (wasDown) this.log.info({ ibms: this.client.base }, `ibms connected , url[${this.client.base}] holding[${this.#held?.version ?? 'nothing'}]`);
    clearFailure();
    this.#link('connected');
    if (r.kind === 'same' && this.#keysDirty && this.#held) await this.#syncKeys(this.#held.bundle);
    if (r.kind === 'same' && this.#packagesDirty && this.#held) {
      const held = this.#held.bundle;
      const res = await this.#syncPackages(held);
      // a package installed on a retry: the space must carry its signed sha256 now
      if (res.installed.length > 0 && !this.#abort.signal.aborted) {
        this.#publish(await this.#packages.spaceBundle(held), 'ibms');
        this.#hold(held, 'ibms');
        this.#saveState();
      }
    }
    if (this.#firstRound && this.#held) {
      this.#firstRound.resolve();
      this.#firstRound = undefined;
    }
  }

  /** Fetch and write this node's private keys the bundle lists; a failure is logged and retried on the next answer. */
  async #syncKeys(bundle: NodeBundle): Promise<void> {
    try {
      await this.#keys.sync(bundle, this.#abort.signal);
      this.#keysDirty = false;
    } catch (e) {
      if (this.#abort.signal.aborted) return;
      this.#keysDirty = true;
      this.log.warn({ err: errorText(e) }, `node private keys not synced , reason[${errorText(e)}] , retrying with the next answer of ibms`);
    }
  }

  #pruneKeys(): void {
    if (!this.#held) return;
    try {
      this.#keys.prune(this.#held.bundle);
    } catch (e) {
      this.log.warn({ err: errorText(e) }, `pruning node private keys failed , reason[${errorText(e)}]`);
    }
  }

  async #syncPackages(bundle: NodeBundle): Promise<PackageResult> {
    // while packages are being installed, the space (of the config being served) accepts their new signed sha256 too
    const res = await this.#packages.sync(bundle, this.#abort.signal, async (next) => {
      const held = this.#held;
      if (!held) return;
      const key = `${held.epoch}/${held.version}:${[...next].map(([b, h]) => `${b}=${h}`).join(',')}`;
      if (key === this.#announced) return; // the space already accepts them (a retry round)
      this.#publish(await this.#packages.spaceBundle(held.bundle, next), 'packages');
      this.#announced = key;
    });
    this.#packagesDirty = res.failed.length > 0;
    this.#state.packages = { failed: res.failed, installed: this.#state.packages.installed + res.installed.length };
    this.#saveState();
    return res;
  }

  /** A new bundle from ibms: packages first (a server switching to the new config finds them), then the space, then the cache. */
  async #apply(bundle: NodeBundle): Promise<void> {
    const prev = this.#held;
    if (prev && prev.epoch !== bundle.epoch) this.log.warn({ from: prev.epoch, to: bundle.epoch }, `registry epoch changed , from[${prev.epoch}] to[${bundle.epoch}] , full resync`);
    else if (prev && bundle.version < prev.version) this.log.warn({ from: prev.version, to: bundle.version }, `registry version went back within epoch ${bundle.epoch} , from[${prev.version}] to[${bundle.version}] , taking the registry's`);
    await this.#syncPackages(bundle);
    // private keys before the space: a reader that sees a pair there finds its file
    await this.#syncKeys(bundle);
    if (this.#abort.signal.aborted) return;
    this.#publish(await this.#packages.spaceBundle(bundle), 'ibms');
    this.#hold(bundle, 'ibms');
    try {
      saveCache(this.#cacheFile, bundle);
    } catch (e) {
      this.log.error({ err: errorText(e), file: this.#cacheFile }, `saving the config cache failed , file[${this.#cacheFile}] reason[${errorText(e)}]`);
    }
    this.#saveState();
  }
}

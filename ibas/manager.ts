/**
 * The ibas manager (IBP's monitor process): owns the listen socket, the scoreboard and the accept
 * lock, spawns and replaces workers, and never serves a transaction itself (except FORK mode's
 * accept, which only hands the connection on).
 *
 * Everything happens in one tick, in a fixed order (gunicorn's arbiter, nginx's master cycle):
 *
 *   1. drain signals   TERM/INT → graceful stop; USR1 → logs reopened; USR2 → upgrade (ibas/upgrade.ts)
 *   2. reap            exits queued by child 'exit' events: free the slot, fold its counters into
 *                      the header, remove the worker's private app folder, classify the exit
 *                      (ibas/exit-class.ts), log code or signal and class (abnormal exits at warn
 *                      → event log) and act on the class: respawn, back off, count, halt
 *   3. timeouts        tiers 2 and 3 (ibas/timeouts.ts)
 *   4. maintain pool   the mode's policy (pool-static, pool-dynamic, fork-mode)
 *
 * Signal handlers and exit events only queue and kick the tick; the tick also runs every
 * monitor.tick_ms. Graceful stop: stop accepting (FORK), SIGTERM every worker (each finishes its
 * running transaction), SIGKILL what is left after monitor.stop_timeout, then remove the
 * scoreboard, the accept lock and the replay cache, close the listen socket, remove the pid file.
 *
 * Resilience (issue 5):
 *   - timeouts: tier 1 is the worker's alarm (ibas/tx-guard.ts), tiers 2/3 the scan below
 *     (ibas/timeouts.ts); the reaper logs which tier ended a worker and answers its client.
 *   - exit classes (ibas/exit-class.ts): recycled/crashed/timed_out → respawn; sick → respawn
 *     after a capped doubling back-off; boot_error → restart budget; fatal → halt; stopped → none.
 *   - restart budget: boot errors are counted over monitor.restart_window; at
 *     monitor.max_restarts respawning stops with an error alert (event log), and with no worker
 *     left the manager halts (exit EXIT.CRASH_LOOP); during `-a start` the start fails.
 *   - halt: the server stops and the manager exits non-zero (EXIT.CRASH_LOOP, EXIT.CHILD_FATAL).
 *   - crashes: a worker dead by SIGSEGV/SIGBUS/SIGABRT/SIGFPE/SIGILL is logged with the app it ran
 *     (its log has the backtrace, lib/native/ibp_crash.c) and replaced; an app that kills its
 *     workers too often is suspended on this server (ibas/suspensions.ts).
 *   - USR2 graceful upgrade (nginx's protocol): ibas/upgrade.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IbpError, errorText } from '../lib/errors.js';
import { EXIT, exitName } from '../lib/exit-codes.js';
import type { Logger } from '../lib/log.js';
import { isAlive, removePid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import { AcceptLock } from './accept-lock.js';
import type { Heartbeat } from '../lib/heartbeat.js';
import { serverHeartbeat } from './heartbeat.js';
import { type Instance, sbModeOf, slotCapacity } from './instance.js';
import { boundAddress, closeSocket, openListenSocket } from './listen-socket.js';
import type { PoolHost, PoolPolicy, WorkerRecord } from './pool.js';
import { DynamicPool } from './pool-dynamic.js';
import { ForkMode } from './fork-mode.js';
import { StaticPool } from './pool-static.js';
import { ReplayCache, replayCacheNeeded } from './replay-cache.js';
import { Scoreboard } from './scoreboard.js';
import { TimeoutScanner } from './timeouts.js';
import { IbasMetrics } from './metrics.js';
import { startScheduledTransactions } from './scheduled.js';
import type { Scheduler } from '../lib/schedule.js';
import { resetFileDir } from './worker.js';
import { removeWorkerPrivateDir } from './app-cache.js';
import { classifyExit, EXIT_CLASSES, SICK_BACKOFF, sickDelayMs, type ExitClass } from './exit-class.js';
import { encodeWorkerEnv } from './handover.js';
import { CrashBrake } from './suspensions.js';
import { Upgrade, type UpgradeHost } from './upgrade.js';

/**
 * V8's young generation of a worker, per semi-space (MB). A worker allocates a little garbage per
 * transaction and keeps almost none of it; V8's default lets the young generation grow to 16 MB
 * per semi-space under such a steady rate, which was 12-16 MB of every worker's RSS (docs/bench/ibas.md).
 * At 1 MB a scavenge comes every few hundred transactions and finds almost nothing alive.
 */
const WORKER_SEMI_SPACE_MB = 1;
/**
 * V8's background threads of a worker (concurrent compiles, GC helpers). Node starts 4 whatever
 * the machine; a worker compiles its code once and keeps a small heap, so one is enough, and each
 * thread less is its stack and malloc arena less in every worker's RSS (issue 9, ~2 MB).
 */
const WORKER_V8_POOL_SIZE = 1;
const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
const CRASH_SIGNALS = new Set(['SIGSEGV', 'SIGBUS', 'SIGABRT', 'SIGFPE', 'SIGILL']);
const ACTION_TEXT = { respawn: 'replacing', backoff: 'replacing after a back-off', budget: 'counted against the restart budget', halt: 'halting', none: 'not replaced' } as const;

interface Exit { pid: number; code: number | null; signal: NodeJS.Signals | null }

export interface ManagerOptions {
  inst: Instance;
  log: Logger;
  generation?: number;
  /** An inherited listen fd (USR2 handover); otherwise the manager binds server.ip:port. */
  listenFd?: number;
  /** USR2 new generation: the pid of the manager it takes over from (shares its scoreboard and lock). */
  upgradeFrom?: number;
}

export function policyOf(inst: Instance): PoolPolicy {
  switch (inst.conf.mpm.mode) {
    case 'FORK': return new ForkMode();
    case 'DYNAMIC_WORKERPOOL': return new DynamicPool(inst.monitor.adjustMs);
    default: return new StaticPool();
  }
}

export class Manager implements PoolHost, UpgradeHost {
  readonly inst: Instance;
  readonly log: Logger;
  readonly generation: number;
  readonly policy: PoolPolicy;
  scoreboard!: Scoreboard;
  listenFd = -1;
  #lock: AcceptLock | undefined;
  /** The replay cache of signed hellos the workers share (ibas/replay-cache.ts): created by the owner, shared across a USR2 handover. */
  #replay: ReplayCache | undefined;
  readonly #workers = new Map<number, WorkerRecord>();
  readonly #children = new Map<number, ChildProcess>();
  readonly #signals: NodeJS.Signals[] = [];
  readonly #exits: Exit[] = [];
  readonly #timeouts = new TimeoutScanner();
  /** /metrics and the per-app counters (ibas/metrics.ts). */
  readonly metrics = new IbasMetrics(() => this.scoreboard, () => this.generation);
  /** ibas.conf `schedule`: transactions run at cron expressions (ibas/scheduled.ts). */
  #schedule: Scheduler | undefined;
  #heartbeat: Heartbeat | undefined;
  #timer: NodeJS.Timeout | undefined;
  #kicked = false;
  #ticking = false;
  #stopping: { since: number; reason: string; killed: boolean } | undefined;
  #finished: ((code: number) => void) | undefined;
  #uninstallSignals: (() => void) | undefined;
  /** False while a previous generation's manager lives (it owns the scoreboard and lock until it exits). */
  #owner: boolean;
  #upgradeFrom: number | undefined;
  /** The USR2 upgrade role (its own state machine). */
  readonly #upgrade: Upgrade;
  /** Handed over to a new generation: leave the shared scoreboard, lock and pid file to it. */
  #handedOver = false;
  /** Generation whose slots must be freed once their processes are gone (after a rollback). */
  #orphanGen: number | undefined;
  /** Times of workers that died at start (restart budget). */
  #bootDeaths: number[] = [];
  /** Why respawning stopped, once the restart budget was exhausted. */
  #respawnStopped: string | undefined;
  /** CHILD_SICK back-off: consecutive sick exits, the last one, and no respawn before `until`. */
  #sick = { streak: 0, lastAt: 0, until: 0 };
  /** The manager's exit code once stopped (non-zero when it halted). */
  #exitCode: number = EXIT.OK;
  readonly #brake: CrashBrake;

  constructor(opts: ManagerOptions) {
    this.inst = opts.inst;
    this.log = opts.log;
    this.generation = opts.generation ?? 1;
    this.policy = policyOf(opts.inst);
    if (opts.listenFd !== undefined) this.listenFd = opts.listenFd;
    this.#upgradeFrom = opts.upgradeFrom;
    this.#owner = opts.upgradeFrom === undefined;
    this.#upgrade = new Upgrade(this);
    this.#brake = new CrashBrake({
      maxCrashes: opts.inst.monitor.appMaxCrashes,
      windowMs: opts.inst.monitor.appCrashWindowMs,
      soDir: opts.inst.home.dir('so'),
      ibmaConfFile: opts.inst.ibmaConfFile,
      log: opts.log,
    });
  }

  get conf() {
    return this.inst.conf;
  }

  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /**
   * Bind (or adopt) the listen socket, create the scoreboard and lock, start the first workers.
   * Resolves once they all left STARTING (the server accepts); rejects when they die instead.
   */
  async start(readyTimeoutMs = 30_000): Promise<void> {
    const { inst } = this;
    const { ip, port } = inst.conf.server;
    if (this.listenFd < 0) this.listenFd = openListenSocket(ip, port, inst.comm.backlog);
    else {
      const bound = boundAddress(this.listenFd);
      if (!bound || bound.port !== port) throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: `inherited fd ${this.listenFd} is not a socket bound to port ${port}`, log: inst.monitorLog });
    }
    if (this.#owner) {
      this.scoreboard = Scoreboard.create(inst.scoreboardKey, slotCapacity(inst.conf, false), sbModeOf(inst.conf, false), this.generation);
      if (inst.conf.mpm.mode !== 'FORK') this.#lock = AcceptLock.create(inst.acceptLockKey);
      // a server that signs nothing makes no replay cache (a stale one of a crashed run goes)
      if (replayCacheNeeded(inst.conf.security)) this.#replay = ReplayCache.create(inst.replayCacheKey, inst.conf.security.replay_cache_size);
      else ReplayCache.remove(inst.replayCacheKey);
    } else {
      // a new generation shares the scoreboard (room for two generations) and the accept lock
      const sb = Scoreboard.attach(inst.scoreboardKey);
      if (!sb) throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: 'upgrade: no scoreboard of the previous generation', log: inst.monitorLog });
      this.scoreboard = sb;
      if (inst.conf.mpm.mode !== 'FORK') this.#lock = AcceptLock.open(inst.acceptLockKey);
      // the nonces the previous generation saw stay remembered (its size stays until a full
      // restart); a generation that signs nothing still attaches one it finds, to remove it at stop
      this.#replay = replayCacheNeeded(inst.conf.security) ? ReplayCache.open(inst.replayCacheKey, inst.conf.security.replay_cache_size) : ReplayCache.attach(inst.replayCacheKey);
    }
    await this.metrics.start(inst, this.#owner, this.log);
    process.title = `ibas: monitor [${ip}:${port}] gen ${this.generation}`;
    this.#uninstallSignals = installSignals({
      stop: (s) => this.#signal(s),
      reopen: (s) => this.#signal(s),
      special: (s) => this.#signal(s),
      reload: (s) => this.#signal(s),
    });
    this.log.info(`manager started , mode[${inst.conf.mpm.mode}] listen[${ip}:${port}] max_count[${inst.conf.mpm.max_count}] generation[${this.generation}] pid[${process.pid}]`);
    this.policy.start(this);
    this.#timer = setInterval(() => this.#tick(), inst.monitor.tickMs);
    await this.#waitReady(readyTimeoutMs);
    if (this.#owner) this.scoreboard.setManager(process.pid, this.generation);
    writePid(inst.pidFile);
    const m = inst.conf.metrics;
    this.#heartbeat = serverHeartbeat(inst.ibmaConfFile, { ip, port, load: () => this.scoreboard.load(), ...(m && !m.token ? { metrics: `${m.ip}:${m.port}` } : {}) }, this.log);
    this.#heartbeat?.start(inst.monitor.heartbeatMs);
    this.#schedule = startScheduledTransactions(inst.conf, this.log);
  }

  /** Resolves with the exit code once a stop completed. */
  finished(): Promise<number> {
    return new Promise((resolve) => (this.#finished = resolve));
  }

  async #waitReady(timeoutMs: number): Promise<void> {
    if (this.policy.mode === 'FORK') return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.#tick();
      const live = this.liveWorkers();
      const starting = live.filter((w) => this.scoreboard.stateOf(w.index) === 'STARTING').length;
      if (live.length > 0 && starting === 0) return;
      if (this.#respawnStopped) {
        throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: `workers die at start: ${this.#respawnStopped}`, log: this.inst.monitorLog });
      }
      if (this.#stopping) throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: `stopped while starting: ${this.#stopping.reason}`, log: this.inst.monitorLog });
      if (Date.now() > deadline) throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: `workers not ready within ${timeoutMs} ms`, log: this.inst.monitorLog });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // ---------------------------------------------------------------- PoolHost

  liveWorkers(): WorkerRecord[] {
    return [...this.#workers.values()].filter((w) => !w.retiring);
  }

  allWorkers(): WorkerRecord[] {
    return [...this.#workers.values()];
  }

  spawnBlocked(): string | undefined {
    if (this.#stopping) return 'the server is stopping';
    if (this.#respawnStopped) return `respawning stopped: ${this.#respawnStopped}`;
    if (Date.now() < this.#sick.until) return `backing off after a sick worker for ${this.#sick.until - Date.now()} ms`;
    return undefined;
  }

  spawnWorker(kind: 'pool' | 'fork', connFd?: number): WorkerRecord | undefined {
    if (this.spawnBlocked() !== undefined) return undefined;
    const index = this.scoreboard.claimSlot();
    if (index < 0) {
      this.log.error(`no free scoreboard slot , slots[${this.scoreboard.slots}] workers[${this.#workers.size}]`);
      return undefined;
    }
    this.scoreboard.prepare(index, this.generation);
    const logFile = this.inst.workerLog(index);
    let errFd: number | undefined;
    let child: ChildProcess;
    try {
      resetFileDir(this.inst.fileDir(index));
      fs.mkdirSync(this.inst.home.dir('log'), { recursive: true });
      errFd = fs.openSync(logFile, 'a');
      const env = encodeWorkerEnv(process.env, { home: this.inst.home.root, confFile: this.inst.confFile, conf: this.inst.conf, slot: index, generation: this.generation, kind });
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect') && !a.startsWith('--max-old-space-size'));
      const heapMb = this.inst.conf.app.js_max_heap_mb;
      if (heapMb !== undefined) execArgv.push(`--max-old-space-size=${heapMb}`); // issue 15: a JS app's heap ends only its worker
      if (!execArgv.some((a) => a.startsWith('--max-semi-space-size'))) execArgv.push(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`);
      if (!execArgv.some((a) => a.startsWith('--v8-pool-size'))) execArgv.push(`--v8-pool-size=${WORKER_V8_POOL_SIZE}`);
      child = spawn(process.execPath, [...execArgv, WORKER_MAIN], {
        stdio: ['ignore', 'ignore', errFd, kind === 'fork' ? connFd! : this.listenFd],
        env,
      });
    } catch (e) {
      this.scoreboard.release(index);
      this.log.error(`spawn worker failed , slot[${index}] reason[${errorText(e)}]`);
      return undefined;
    } finally {
      if (errFd !== undefined) fs.closeSync(errFd);
    }
    const pid = child.pid;
    if (pid === undefined) {
      this.scoreboard.release(index);
      this.log.error(`spawn worker failed , slot[${index}] (no pid)`);
      child.on('error', () => undefined);
      return undefined;
    }
    this.scoreboard.assign(index, pid);
    this.scoreboard.countSpawn();
    const rec: WorkerRecord = { pid, index, generation: this.generation, kind, spawnedAt: Date.now() };
    this.#workers.set(pid, rec);
    this.#children.set(pid, child);
    child.on('error', (e) => this.log.error(`worker process error , pid[${pid}] reason[${e.message}]`));
    child.on('exit', (code, signal) => {
      this.#exits.push({ pid, code, signal });
      this.kick();
    });
    this.log.info(`worker spawned , pid[${pid}] slot[${index}] kind[${kind}] generation[${this.generation}]`);
    return rec;
  }

  retireWorker(w: WorkerRecord, reason: string): void {
    if (w.retiring) return;
    w.retiring = reason;
    this.log.info(`worker retired , pid[${w.pid}] slot[${w.index}] reason[${reason}]`);
    try {
      process.kill(w.pid, 'SIGTERM');
    } catch {
      // gone already: the reaper will see it
    }
  }

  kick(): void {
    if (this.#kicked) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      this.#tick();
    });
  }

  // ---------------------------------------------------------------- the tick

  #signal(s: NodeJS.Signals): void {
    this.#signals.push(s);
    this.kick();
  }

  #tick(): void {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      this.#drainSignals();
      this.#reap();
      this.#watchGenerations();
      if (!this.#stopping) {
        this.#watchApps();
        this.#timeouts.scan(this.scoreboard, this.#workers.values(), this.log);
        this.policy.maintain(this, Date.now());
      } else {
        this.#continueStop();
      }
    } catch (e) {
      this.log.error({ stack: (e as Error)?.stack }, `manager tick failed , reason[${errorText(e)}]`);
    } finally {
      this.#ticking = false;
    }
  }

  #drainSignals(): void {
    while (this.#signals.length > 0) {
      const s = this.#signals.shift()!;
      switch (s) {
        case 'SIGTERM':
        case 'SIGINT':
          this.log.info(`signal ${s} received , graceful stop`);
          this.stop(`${s} received`);
          break;
        case 'SIGUSR1':
          this.log.info('signal SIGUSR1 received , logs reopened');
          for (const w of this.#workers.values()) try { process.kill(w.pid, 'SIGUSR1'); } catch { /* gone */ }
          break;
        case 'SIGUSR2':
          this.#upgrade.start();
          break;
        default:
          this.log.info(`signal ${s} received , ignored`);
      }
    }
  }

  #reap(): void {
    while (this.#exits.length > 0) {
      const { pid, code, signal } = this.#exits.shift()!;
      const rec = this.#workers.get(pid);
      this.#workers.delete(pid);
      this.#children.delete(pid);
      if (!rec) continue;
      const last = this.scoreboard.release(rec.index);
      removeWorkerPrivateDir(this.inst.home.dir('so'), rec.index, pid);
      const abnormal = signal !== null || code !== EXIT.OK;
      const tier = this.#timeouts.exited(pid, signal, last, this.log);
      const cls = classifyExit({ code, signal, retiring: rec.retiring !== undefined, state: last.state, tier });
      const inTx = last.txStartAt > 0 && last.app !== '';
      this.metrics.workerExit(cls, tier);
      if (signal && CRASH_SIGNALS.has(signal)) {
        this.log.warn({ pid, slot: rec.index, signal, app: last.app }, `worker crashed , pid[${pid}] slot[${rec.index}] signal[${signal}]${inTx ? ` app[${last.app}] (in a transaction: the client got a crash answer)` : ''} , the backtrace is in ${this.inst.workerLog(rec.index)}`);
      }
      this.scoreboard.retire(Math.max(last.count, 0), Math.max(last.errors, 0), abnormal);
      const spec = EXIT_CLASSES[cls];
      const what = `worker exited , pid[${pid}] slot[${rec.index}] ${signal ? `signal[${signal}]` : `code[${code}]`} transactions[${last.count}] state[${last.state}]${rec.retiring ? ` retired[${rec.retiring}]` : ''} class[${cls}] action[${spec.action}]`;
      const fields = { pid, slot: rec.index, code, signal, class: cls, action: spec.action };
      if (spec.level !== 'info' && !this.#stopping) this.log[spec.level](fields, `${what}${code !== null && code !== EXIT.OK ? ` exit[${exitName(code)}]` : ''} , ${ACTION_TEXT[spec.action]}`);
      else this.log.info(fields, what);
      if (spec.appCrash && inTx && !this.#stopping) this.#brake.crashed(this.scoreboard, last.app);
      this.#act(cls, pid, code, signal);
      this.policy.exited?.(rec);
    }
  }

  /** Act on an exit's class (ibas/exit-class.ts). */
  #act(cls: ExitClass, pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    switch (EXIT_CLASSES[cls].action) {
      case 'backoff': {
        const now = Date.now();
        this.#sick.streak = now - this.#sick.lastAt > SICK_BACKOFF.resetMs ? 1 : this.#sick.streak + 1;
        this.#sick.lastAt = now;
        const delay = sickDelayMs(this.#sick.streak);
        this.#sick.until = now + delay;
        this.log.warn({ pid, class: cls, streak: this.#sick.streak, delayMs: delay }, `worker sick , pid[${pid}] sick_exits[${this.#sick.streak}] , respawning backs off: next spawn in ${delay} ms`);
        return;
      }
      case 'budget':
        this.#bootDeath(pid, code, signal);
        return;
      case 'halt':
        this.log.error({ alert: 'worker_fatal', pid }, `ALERT worker fatal , pid[${pid}] exit[${exitName(code ?? -1)}] , the server halts: see ${this.inst.monitorLog} and the worker logs`);
        this.halt(`worker ${pid} exited CHILD_FATAL`, EXIT.CHILD_FATAL);
        return;
      default:
    }
  }

  /** A worker died at start: count it against the restart budget. */
  #bootDeath(pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    const now = Date.now();
    const { maxRestarts, restartWindowMs } = this.inst.monitor;
    this.#bootDeaths = this.#bootDeaths.filter((t) => now - t <= restartWindowMs);
    this.#bootDeaths.push(now);
    if (this.#respawnStopped || this.#bootDeaths.length < maxRestarts) return;
    this.#respawnStopped = `${this.#bootDeaths.length} workers died at start within ${restartWindowMs} ms (last: pid ${pid} ${signal ? `signal ${signal}` : `code ${code}`})`;
    this.log.error({ alert: 'restart_budget', deaths: this.#bootDeaths.length, windowMs: restartWindowMs }, `ALERT restart budget exhausted , ${this.#respawnStopped} , respawning stopped (monitor.max_restarts ${maxRestarts}): see the worker logs, fix the cause, restart ibas`);
    this.#checkBudgetHalt();
  }

  /** Respawning stopped and no worker left: nothing will ever serve again. */
  #checkBudgetHalt(): void {
    if (this.#respawnStopped && this.liveWorkers().length === 0 && !this.#stopping) this.halt(`restart budget exhausted: ${this.#respawnStopped}`, EXIT.CRASH_LOOP);
  }

  // ---------------------------------------------------------------- USR2 graceful upgrade (ibas/upgrade.ts)

  /** SIGUSR2 (also callable directly). */
  upgrade(): void {
    this.#upgrade.start();
  }

  get upgradeState(): string {
    return this.#upgrade.state;
  }

  upgradeBlocked(): string | undefined {
    if (this.#stopping) return 'the server is stopping';
    if (!this.#owner) return `the previous generation (pid ${this.#upgradeFrom}) is still leaving`;
    return undefined;
  }

  handedOver(generation: number, pid: number): void {
    this.#handedOver = true;
    this.stop(`handed over to generation ${generation} (pid ${pid})`);
  }

  rolledBack(generation: number): void {
    this.#orphanGen = generation;
    this.kick();
  }

  /** Ownership after a handover, and slots left by a rolled-back generation. */
  #watchGenerations(): void {
    if (!this.#owner && this.#upgradeFrom !== undefined && !isAlive(this.#upgradeFrom)) {
      this.#owner = true;
      this.scoreboard.setManager(process.pid, this.generation);
      this.log.info(`upgrade complete , the previous generation (pid ${this.#upgradeFrom}) is gone , generation ${this.generation} owns the scoreboard and lock`);
      this.#upgradeFrom = undefined;
    }
    if (this.#orphanGen !== undefined) {
      let left = 0;
      for (const s of this.scoreboard.all()) {
        if (s.generation !== this.#orphanGen || (s.state === 'DEAD' && s.pid === 0)) continue;
        if (s.pid > 0 && isAlive(s.pid)) {
          left++;
          continue;
        }
        this.scoreboard.release(s.index);
      }
      if (left === 0) this.#orphanGen = undefined;
    }
  }

  /** Stop because nothing good can come of running on; the manager exits with `code` (non-zero). */
  halt(reason: string, code: number): void {
    if (this.#exitCode === EXIT.OK) this.#exitCode = code;
    this.log.error({ alert: 'halt', code }, `manager halts , reason[${reason}] exit[${code} ${exitName(code)}]`);
    this.stop(`halted: ${reason}`);
  }

  /** Begin a graceful stop (idempotent). */
  stop(reason: string): void {
    if (this.#stopping) return;
    this.#upgrade.abort(`the server is stopping (${reason})`);
    this.#stopping = { since: Date.now(), reason, killed: false };
    this.policy.stop();
    void this.#heartbeat?.end(); // the session ends in ibms now (a handover's new generation beats on its own)
    this.#schedule?.stop();
    for (const w of this.#workers.values()) {
      w.retiring ??= 'server stopping';
      try {
        process.kill(w.pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    this.kick();
  }

  #continueStop(): void {
    const st = this.#stopping!;
    if (this.#workers.size > 0) {
      if (!st.killed && Date.now() - st.since > this.inst.monitor.stopTimeoutMs) {
        st.killed = true;
        this.log.warn(`stop timeout , ${this.#workers.size} workers still running after ${this.inst.monitor.stopTimeoutMs} ms , SIGKILL`);
        for (const w of this.#workers.values()) try { process.kill(w.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      return;
    }
    this.#finish();
  }

  /** Once a tick: the crash-loop brake's package checks, and a budget halt once the last worker left. */
  #watchApps(): void {
    this.#brake.scan(this.scoreboard);
    this.#checkBudgetHalt();
  }

  #finish(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#uninstallSignals?.();
    this.#timeouts.clear();
    this.metrics.close(this.#owner && !this.#handedOver);
    if (this.#owner && !this.#handedOver) {
      try {
        this.scoreboard.destroy();
      } catch (e) {
        this.log.warn(`scoreboard removal failed , reason[${errorText(e)}]`);
      }
      try {
        this.#lock?.remove();
      } catch (e) {
        this.log.warn(`accept lock removal failed , reason[${errorText(e)}]`);
      }
      try {
        this.#replay?.destroy();
      } catch (e) {
        this.log.warn(`replay cache removal failed , reason[${errorText(e)}]`);
      }
    } else {
      this.scoreboard.detach();
      this.#replay?.detach();
    }
    closeSocket(this.listenFd);
    removePid(this.inst.pidFile);
    if (this.#handedOver) {
      try { fs.unlinkSync(`${this.inst.pidFile}.oldbin`); } catch { /* gone */ }
    }
    this.#upgrade.finish();
    this.log.info(`manager stopped , reason[${this.#stopping?.reason}] exit[${this.#exitCode}]`);
    this.#finished?.(this.#exitCode);
  }

  /** Tear down after a failed start (workers already spawned are killed). */
  abort(): void {
    for (const w of this.#workers.values()) try { process.kill(w.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.#timer) clearInterval(this.#timer);
    this.#uninstallSignals?.();
    this.metrics.close(this.#owner);
    if (this.#owner) {
      try { this.scoreboard?.destroy(); } catch { /* none */ }
      try { this.#lock?.remove(); } catch { /* none */ }
      try { this.#replay?.destroy(); } catch { /* none */ }
    } else {
      try { this.scoreboard?.detach(); } catch { /* none */ }
      try { this.#replay?.detach(); } catch { /* none */ }
    }
    closeSocket(this.listenFd);
  }
}

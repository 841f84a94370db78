/**
 * The ibas manager (IBP's monitor process): owns the listen socket, the scoreboard and the accept
 * lock, spawns and replaces workers, and never serves a transaction itself (except FORK mode's
 * accept, which only hands the connection on).
 *
 * Everything happens in one tick, in a fixed order (gunicorn's arbiter, nginx's master cycle):
 *
 *   1. drain signals   TERM/INT → graceful stop; USR1 → logs reopened; USR2 → upgrade (issue 5)
 *   2. reap            exits queued by child 'exit' events: free the slot, fold its counters into
 *                      the header, log code or signal (abnormal exits at warn → event log)
 *   3. timeouts        tiers 2 and 3 (ibas/timeouts.ts)
 *   4. maintain pool   the mode's policy (pool-static, pool-dynamic, fork-mode)
 *
 * Signal handlers and exit events only queue and kick the tick; the tick also runs every
 * monitor.tick_ms. Graceful stop: stop accepting (FORK), SIGTERM every worker (each finishes its
 * running transaction), SIGKILL what is left after monitor.stop_timeout, then remove the
 * scoreboard and the accept lock, close the listen socket, remove the pid file.
 *
 * Resilience (issue 5):
 *   - timeouts: tier 1 is the worker's alarm (ibas/tx-guard.ts), tiers 2/3 the scan below
 *     (ibas/timeouts.ts); the reaper logs which tier ended a worker and answers its client.
 *   - restart budget: workers dying at start (a boot-error exit code of lib/exit-codes.ts, or any
 *     death before they were ready) are counted over monitor.restart_window; at
 *     monitor.max_restarts respawning stops with an error alert (event log), and with no worker
 *     left the manager stops; during `-a start` the start fails.
 *   - crashes: a worker dead by SIGSEGV/SIGBUS/SIGABRT/SIGFPE/SIGILL is logged with the app it ran
 *     (its log has the backtrace, lib/native/ibp_crash.c) and replaced.
 *   - USR2 graceful upgrade (nginx's protocol): see {@link Manager.upgrade}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbpError, errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
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
import { Scoreboard } from './scoreboard.js';
import { TimeoutScanner } from './timeouts.js';
import { IbasMetrics } from './metrics.js';
import { startScheduledTransactions } from './scheduled.js';
import type { Scheduler } from '../lib/schedule.js';
import { resetFileDir } from './worker.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** The ibas entry point on disk: a USR2 new generation runs whatever code is there now. */
const IBAS_MAIN = fileURLToPath(new URL('../bin/ibas.js', import.meta.url));
/** Fds of a USR2 new generation: 3 = its ready pipe (lib/daemon.ts), 4 = the inherited listen socket. */
const UPGRADE_LISTEN_FD = 4;
const CRASH_SIGNALS = new Set(['SIGSEGV', 'SIGBUS', 'SIGABRT', 'SIGFPE', 'SIGILL']);
const BOOT_ERRORS = new Set<number>([EXIT.CHILD_INIT, EXIT.APP_LOAD, EXIT.CHILD_FATAL]);

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

interface Upgrade { child: ChildProcess; pid: number; generation: number; since: number; settled: boolean }

export function policyOf(inst: Instance): PoolPolicy {
  switch (inst.conf.mpm.mode) {
    case 'FORK': return new ForkMode();
    case 'DYNAMIC_WORKERPOOL': return new DynamicPool(inst.monitor.adjustMs);
    default: return new StaticPool();
  }
}

export class Manager implements PoolHost {
  readonly inst: Instance;
  readonly log: Logger;
  readonly generation: number;
  readonly policy: PoolPolicy;
  scoreboard!: Scoreboard;
  listenFd = -1;
  #lock: AcceptLock | undefined;
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
  /** A USR2 new generation being started by this manager. */
  #upgrade: Upgrade | undefined;
  /** Handed over to a new generation: leave the shared scoreboard, lock and pid file to it. */
  #handedOver = false;
  /** Generation whose slots must be freed once their processes are gone (after a rollback). */
  #orphanGen: number | undefined;
  /** Times of workers that died at start (restart budget). */
  #bootDeaths: number[] = [];
  /** Why respawning stopped, once the restart budget was exhausted. */
  #respawnStopped: string | undefined;

  constructor(opts: ManagerOptions) {
    this.inst = opts.inst;
    this.log = opts.log;
    this.generation = opts.generation ?? 1;
    this.policy = policyOf(opts.inst);
    if (opts.listenFd !== undefined) this.listenFd = opts.listenFd;
    this.#upgradeFrom = opts.upgradeFrom;
    this.#owner = opts.upgradeFrom === undefined;
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
    } else {
      // a new generation shares the scoreboard (room for two generations) and the accept lock
      const sb = Scoreboard.attach(inst.scoreboardKey);
      if (!sb) throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: 'upgrade: no scoreboard of the previous generation', log: inst.monitorLog });
      this.scoreboard = sb;
      if (inst.conf.mpm.mode !== 'FORK') this.#lock = AcceptLock.open(inst.acceptLockKey);
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

  spawnWorker(kind: 'pool' | 'fork', connFd?: number): WorkerRecord | undefined {
    if (this.#stopping || this.#respawnStopped) return undefined;
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
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        IBP_HOME: this.inst.home.root,
        IBAS_CONF: this.inst.confFile,
        IBAS_SLOT: String(index),
        IBAS_GENERATION: String(this.generation),
        IBAS_WORKER_MODE: kind,
      };
      delete env.IBP_DAEMON_CHILD;
      delete env.IBAS_LISTEN_FD;
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
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
          this.upgrade();
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
      const abnormal = signal !== null || code !== EXIT.OK;
      const tier = this.#timeouts.exited(pid, signal, last, this.log);
      this.metrics.workerExit({ code, signal, tier, retiring: rec.retiring, crash: signal !== null && CRASH_SIGNALS.has(signal), bootError: code !== null && BOOT_ERRORS.has(code) });
      if (signal && CRASH_SIGNALS.has(signal)) {
        this.log.warn({ pid, slot: rec.index, signal, app: last.app }, `worker crashed , pid[${pid}] slot[${rec.index}] signal[${signal}]${last.txStartAt > 0 ? ` app[${last.app}] (in a transaction: the client got a crash answer)` : ''} , the backtrace is in ${this.inst.workerLog(rec.index)}`);
      }
      if ((code !== null && BOOT_ERRORS.has(code)) || (abnormal && last.state === 'STARTING')) this.#bootDeath(pid, code, signal);
      this.scoreboard.retire(Math.max(last.count, 0), Math.max(last.errors, 0), abnormal);
      const what = `worker exited , pid[${pid}] slot[${rec.index}] ${signal ? `signal[${signal}]` : `code[${code}]`} transactions[${last.count}] state[${last.state}]${rec.retiring ? ` retired[${rec.retiring}]` : ''}`;
      if (abnormal && !this.#stopping) this.log.warn({ pid, slot: rec.index, code, signal }, `${what} , replacing`);
      else this.log.info({ pid, slot: rec.index, code, signal }, what);
      this.policy.exited?.(rec);
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
    if (this.liveWorkers().length === 0 && !this.#stopping) this.stop(`restart budget exhausted: ${this.#respawnStopped}`);
  }

  // ---------------------------------------------------------------- USR2 graceful upgrade

  /**
   * SIGUSR2 (nginx's protocol): rename the pid file to `<pid file>.oldbin`, start a new-generation
   * manager from the code on disk (dist/bin/ibas.js) with the listen socket inherited on fd 4 and
   * a ready pipe on fd 3. It attaches the shared scoreboard and accept lock, starts its workers and
   * writes the pid file; when it reports ready this manager stops (its workers finish their
   * current connection; queued connections are accepted by the new workers, the socket is never
   * closed) and exits without removing what the new generation now uses. A new generation that
   * exits, reports a failure or is not ready within monitor.upgrade_timeout is killed, `.oldbin`
   * is renamed back, and this generation keeps serving. A second USR2 while two generations live
   * is refused.
   */
  upgrade(): void {
    const refuse = (why: string): void => this.log.warn(`signal SIGUSR2 received , upgrade refused: ${why}`);
    if (this.#stopping) return refuse('the server is stopping');
    if (this.#upgrade) return refuse(`generation ${this.#upgrade.generation} (pid ${this.#upgrade.pid}) is already starting`);
    if (!this.#owner) return refuse(`the previous generation (pid ${this.#upgradeFrom}) is still leaving`);
    const { inst } = this;
    const oldbin = `${inst.pidFile}.oldbin`;
    const generation = this.generation + 1;
    let child: ChildProcess;
    let errFd: number | undefined;
    try {
      fs.renameSync(inst.pidFile, oldbin);
      errFd = fs.openSync(path.join(path.dirname(inst.monitorLog), 'ibas_stderr.log'), 'a');
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        IBP_DAEMON_CHILD: '1',
        IBP_HOME: inst.home.root,
        IBAS_LISTEN_FD: String(UPGRADE_LISTEN_FD),
        IBAS_GENERATION: String(generation),
        IBAS_UPGRADE_FROM: String(process.pid),
      };
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
      child = spawn(process.execPath, [...execArgv, IBAS_MAIN, '-f', inst.confFile, '-a', 'start'], {
        detached: true,
        stdio: ['ignore', 'ignore', errFd, 'pipe', this.listenFd],
        env,
      });
    } catch (e) {
      try { if (fs.existsSync(oldbin)) fs.renameSync(oldbin, inst.pidFile); } catch { /* keep going */ }
      this.log.error(`upgrade failed , reason[${errorText(e)}] , generation ${this.generation} keeps serving`);
      return;
    } finally {
      if (errFd !== undefined) fs.closeSync(errFd);
    }
    const up: Upgrade = { child, pid: child.pid ?? -1, generation, since: Date.now(), settled: false };
    this.#upgrade = up;
    this.log.info(`signal SIGUSR2 received , upgrade: pid file renamed to ${path.basename(oldbin)} , starting generation ${generation} pid[${up.pid}] from ${IBAS_MAIN}`);
    const timer = setTimeout(() => this.#upgradeFailed(up, `not ready within ${inst.monitor.upgradeTimeoutMs} ms`), inst.monitor.upgradeTimeoutMs);
    const ready = child.stdio[3] as NodeJS.ReadableStream | null;
    let text = '';
    ready?.setEncoding('utf8');
    ready?.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const line = text.slice(0, nl);
      if (line === 'READY') this.#upgradeReady(up);
      else this.#upgradeFailed(up, line.replace(/^FAILED /, 'it reported: '));
    });
    ready?.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      this.#upgradeFailed(up, e.message);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      this.#upgradeFailed(up, `it exited with ${signal ? `signal ${signal}` : `code ${code}`} (see ibas_stderr.log and the monitor log)`);
    });
  }

  #upgradeReady(up: Upgrade): void {
    if (up.settled) return;
    up.settled = true;
    (up.child.stdio[3] as unknown as { destroy(): void } | null)?.destroy();
    up.child.removeAllListeners('exit');
    up.child.on('exit', () => undefined);
    up.child.unref();
    this.#handedOver = true;
    this.log.info(`upgrade: generation ${up.generation} pid[${up.pid}] is ready , generation ${this.generation} stops accepting; its workers finish their current connection`);
    this.stop(`handed over to generation ${up.generation} (pid ${up.pid})`);
  }

  #upgradeFailed(up: Upgrade, why: string): void {
    if (up.settled) return;
    up.settled = true;
    this.#upgrade = undefined;
    (up.child.stdio[3] as unknown as { destroy(): void } | null)?.destroy();
    try { process.kill(up.pid, 'SIGKILL'); } catch { /* gone */ }
    const { pidFile } = this.inst;
    try {
      fs.renameSync(`${pidFile}.oldbin`, pidFile);
    } catch {
      writePid(pidFile);
    }
    this.#orphanGen = up.generation;
    this.log.error({ alert: 'upgrade_rollback', generation: up.generation }, `upgrade rolled back , generation ${up.generation} pid[${up.pid}] failed: ${why} , it was killed, the pid file is back, generation ${this.generation} keeps serving`);
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

  /** Begin a graceful stop (idempotent). */
  stop(reason: string): void {
    if (this.#stopping) return;
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
    } else {
      this.scoreboard.detach();
    }
    closeSocket(this.listenFd);
    removePid(this.inst.pidFile);
    if (this.#handedOver) {
      try { fs.unlinkSync(`${this.inst.pidFile}.oldbin`); } catch { /* gone */ }
    }
    this.log.info(`manager stopped , reason[${this.#stopping?.reason}]`);
    this.#finished?.(EXIT.OK);
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
    } else {
      try { this.scoreboard?.detach(); } catch { /* none */ }
    }
    closeSocket(this.listenFd);
  }
}

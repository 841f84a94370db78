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
 * Room for issue 5: slots carry a generation; the listen fd can be inherited (IBAS_LISTEN_FD) so a
 * new-generation manager never re-binds; tier 1 hooks in through TxGuard.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IbpError, errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import type { Logger } from '../lib/log.js';
import { removePid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import { AcceptLock } from './accept-lock.js';
import { Heartbeat } from './heartbeat.js';
import { type Instance, sbModeOf, slotCapacity } from './instance.js';
import { boundAddress, closeSocket, openListenSocket } from './listen-socket.js';
import type { PoolHost, PoolPolicy, WorkerRecord } from './pool.js';
import { DynamicPool } from './pool-dynamic.js';
import { ForkMode } from './fork-mode.js';
import { StaticPool } from './pool-static.js';
import { Scoreboard } from './scoreboard.js';
import { TimeoutScanner } from './timeouts.js';
import { resetFileDir } from './worker.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

interface Exit { pid: number; code: number | null; signal: NodeJS.Signals | null }

export interface ManagerOptions {
  inst: Instance;
  log: Logger;
  generation?: number;
  /** An inherited listen fd (USR2 handover); otherwise the manager binds server.ip:port. */
  listenFd?: number;
}

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
  #heartbeat: Heartbeat | undefined;
  #timer: NodeJS.Timeout | undefined;
  #kicked = false;
  #ticking = false;
  #stopping: { since: number; reason: string; killed: boolean } | undefined;
  #finished: ((code: number) => void) | undefined;
  #uninstallSignals: (() => void) | undefined;

  constructor(opts: ManagerOptions) {
    this.inst = opts.inst;
    this.log = opts.log;
    this.generation = opts.generation ?? 1;
    this.policy = policyOf(opts.inst);
    if (opts.listenFd !== undefined) this.listenFd = opts.listenFd;
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
    this.scoreboard = Scoreboard.create(inst.scoreboardKey, slotCapacity(inst.conf, false), sbModeOf(inst.conf, false), this.generation);
    if (inst.conf.mpm.mode !== 'FORK') this.#lock = AcceptLock.create(inst.acceptLockKey);
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
    writePid(inst.pidFile);
    this.#heartbeat = Heartbeat.fromIbmaConf(inst.ibmaConfFile, { ip, port, load: () => this.scoreboard.load() }, this.log);
    this.#heartbeat?.start(inst.monitor.heartbeatMs);
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
      if (this.scoreboard.header().deaths >= Math.max(3, this.conf.mpm.max_count)) {
        throw new IbpError('IBP_ERR_DAEMON_START', { tool: 'ibas', detail: 'workers die at start', log: this.inst.monitorLog });
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
    if (this.#stopping) return undefined;
    const index = this.scoreboard.freeSlot();
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
          this.log.warn('signal SIGUSR2 received , graceful upgrade is not available in this build (issue 5): ignored');
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
      this.#timeouts.forget(pid);
      if (!rec) continue;
      const last = this.scoreboard.release(rec.index);
      const abnormal = signal !== null || code !== EXIT.OK;
      this.scoreboard.retire(Math.max(last.count, 0), Math.max(last.errors, 0), abnormal);
      const what = `worker exited , pid[${pid}] slot[${rec.index}] ${signal ? `signal[${signal}]` : `code[${code}]`} transactions[${last.count}] state[${last.state}]${rec.retiring ? ` retired[${rec.retiring}]` : ''}`;
      if (abnormal && !this.#stopping) this.log.warn({ pid, slot: rec.index, code, signal }, `${what} , replacing`);
      else this.log.info({ pid, slot: rec.index, code, signal }, what);
      this.policy.exited?.(rec);
    }
  }

  /** Begin a graceful stop (idempotent). */
  stop(reason: string): void {
    if (this.#stopping) return;
    this.#stopping = { since: Date.now(), reason, killed: false };
    this.policy.stop();
    this.#heartbeat?.stop();
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
    closeSocket(this.listenFd);
    removePid(this.inst.pidFile);
    this.log.info(`manager stopped , reason[${this.#stopping?.reason}]`);
    this.#finished?.(EXIT.OK);
  }

  /** Tear down after a failed start (workers already spawned are killed). */
  abort(): void {
    for (const w of this.#workers.values()) try { process.kill(w.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.#timer) clearInterval(this.#timer);
    this.#uninstallSignals?.();
    try { this.scoreboard?.destroy(); } catch { /* none */ }
    try { this.#lock?.remove(); } catch { /* none */ }
    closeSocket(this.listenFd);
  }
}

/**
 * A worker: serves connections one at a time until told to go (IBP §2.5.1, httpd's child_main in
 * small steps). In a pool (STATIC/DYNAMIC) it is a follower queueing for the accept lock, the
 * leader while it holds it:
 *
 *   recycle check → IDLE → lock → LISTEN (poll + accept4) → unlock → READING ⇄ WORKING → close
 *
 * The whole path runs on the main thread with synchronous libc calls (semtimedop, poll, accept4,
 * recv, send, close; ibas/conn-io.ts, ibas/connection.ts): no net.Socket, no event-loop hop per
 * connection. Every blocking call is a bounded round (lock and accept 100 ms, connection waits
 * 50 ms) followed by a turn of the event loop, and continuous work (back-to-back calls on one
 * connection, or connections taken one after another without a wait) gives the loop a turn at
 * least every TURN_MS (30 ms), so signals (stop, log reopen) are handled within that bound plus
 * the transaction being served (docs/ibas.md "Signals").
 *
 * In FORK mode it serves the one connection the manager accepted for it (fd 3) and exits. In
 * foreground mode (`ibas -a start --foreground`) the same loop runs inside the one process,
 * without a manager and without a lock.
 *
 * It writes only its own scoreboard slot. SIGTERM: a worker without a connection exits at once (a
 * held accept lock goes back through SEM_UNDO; nothing was accepted, so a waiting connection stays
 * in the accept queue for another worker or the next generation). A worker holding a connection
 * serves every transaction already sent on it (and the first one of a fresh connection), then
 * closes it and exits. max_process_count > 0: after that many transactions the worker closes its
 * connection between transactions and exits; the manager replaces it (recycling).
 */
import { InDoubt } from './in-doubt.js';
import fs from 'node:fs';
import { errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import { flushStaleLogs, type Logger } from '../lib/log.js';
import { TX_FLAG } from '../lib/protocol/codec.js';
import type { AcceptLock } from './accept-lock.js';
import { AppResolver } from './app-resolver.js';
import { POLLIN, acceptNow, noDelayListen, peerOf, recvTimeoutListen, waitFd, type Accepted, type Peer } from './conn-io.js';
import { LoopTurns, ROUND_MS, serveConnection, type ConnectionHost } from './connection.js';
import type { Instance } from './instance.js';
import type { Scoreboard, SlotWriter } from './scoreboard.js';
import type { ConnectionContext } from './session.js';
import { TransactionRunner, type TxGuard } from './transaction.js';
import { TxLog } from './tx-log.js';
import { txGateOf } from './tx-keys.js';
import { grantableOf, type NonceMemory } from '../lib/protocol/tx-security.js';
import type { AlarmGuard } from './tx-guard.js';

export type WorkerMode = 'pool' | 'fork' | 'foreground';

/** One round of waiting for the accept lock or for a connection, before the event loop gets a turn. */
const ACCEPT_ROUND_MS = 100;
/**
 * The resolver's idle work after a connection (shmget for a re-created config index, lstat of every
 * cached unsigned .so) runs at most this often while connections follow each other without pause;
 * a quiet round (nothing to serve) always runs it. Transactions follow a newer config segment on
 * their own (AppResolver.lookup) and get() checks the .so identity, so this only bounds the cost.
 * (Throttled once before and reverted when old generations hung on USR2: that was the lost-signal
 * bug, a worker that never turned its event loop, fixed in LoopTurns; test/ibas/signal-busy.)
 */
const IDLE_WORK_MS = 100;

export interface WorkerOptions {
  inst: Instance;
  mode: WorkerMode;
  /** This worker's scoreboard slot (also its index in logs and the app context). */
  index: number;
  generation: number;
  scoreboard: Scoreboard;
  /** pool / foreground: the listen fd; fork: the accepted connection's fd. */
  fd: number;
  /** The replay cache of signed hellos shared by the ibas's workers (ibas/replay-cache.ts). */
  replay?: NonceMemory;
  /** pool: the accept lock (foreground has no rival and takes none). */
  lock?: AcceptLock;
  log: Logger;
  guard?: TxGuard;
  /** Tier 1 and the crash answer (pool and fork workers): told which connection is served. */
  alarm?: AlarmGuard;
}

export class Worker {
  readonly opts: WorkerOptions;
  readonly slot: SlotWriter;
  readonly resolver: AppResolver;
  readonly runner: TransactionRunner;
  readonly #log: Logger;
  readonly #host: ConnectionHost;
  readonly #turns = new LoopTurns();
  #stopping: string | undefined;
  #busy = false;
  #idleWorkAt = 0;
  /** Transactions before recycling (max_process_count plus this worker's jitter; 0 = never). */
  readonly maxCount: number;

  constructor(opts: WorkerOptions) {
    this.opts = opts;
    this.#log = opts.log;
    const { inst } = opts;
    this.slot = opts.scoreboard.writer(opts.index);
    this.resolver = new AppResolver({
      ibmaConfFile: inst.ibmaConfFile,
      soDir: inst.home.dir('so'),
      fileDir: inst.fileDir(opts.index),
      maxCache: inst.conf.app.max_so_cache_count,
      workerIndex: opts.index,
      log: opts.log,
      suspensions: opts.scoreboard,
    });
    opts.alarm?.attach(this.slot);
    this.runner = new TransactionRunner(this.resolver, this.slot, inst.fileDir(opts.index), opts.log, opts.alarm ?? opts.guard, inst.comm.maxFilesBytes);
    const base = inst.conf.mpm.max_process_count;
    const jitter = inst.conf.mpm.max_process_count_jitter ?? 0;
    const maxCount = base > 0 ? base + Math.floor(Math.random() * (jitter + 1)) : 0;
    this.maxCount = maxCount;
    const gate = txGateOf(inst.conf, inst.home, () => {
      try {
        return this.resolver.space();
      } catch {
        return undefined; // no config space yet: a signed pre-request gets IBP_ERR_TX_NO_KEY
      }
    }, opts.replay);
    const ctx: ConnectionContext = {
      runner: this.runner,
      limits: inst.limits,
      maxFilesBytes: inst.comm.maxFilesBytes,
      log: opts.log,
      txLog: new TxLog(opts.log),
      load: () => opts.scoreboard.load(),
      grantable: (inst.conf.security.compress_flag ? TX_FLAG.COMPRESS : 0) | TX_FLAG.PREPARE | TX_FLAG.GTRID | grantableOf(gate.policy),
      gate,
      compressMin: () => this.resolver.minCompressSize(),
      mustClose: () => this.leaving() !== undefined,
      keepaliveMaxRequests: inst.comm.keepaliveMaxRequests,
      countError: () => this.slot.error(),
      inDoubt: new InDoubt(inst.home.root, this.runner, opts.log),
    };
    const { alarm } = opts;
    this.#host = {
      ctx,
      comm: inst.comm,
      log: opts.log,
      turns: this.#turns,
      leaving: () => this.leaving(),
      transport: (fd, t) => {
        alarm?.connection(fd, t);
        this.slot.transport(fd, t);
      },
      pending: (fn) => alarm?.pending(fn),
      reading: () => this.slot.state('READING'),
      between: (idle) => {
        if (idle) this.slot.state('KEEPALIVE');
      },
      quiet: () => this.resolver.idle(),
    };
  }

  /** Why the worker is leaving, or undefined while it serves on. */
  leaving(): string | undefined {
    if (this.#stopping) return this.#stopping;
    const max = this.maxCount;
    if (max > 0 && this.slot.count >= max) return `recycled after ${this.slot.count} transactions (max_process_count ${this.opts.inst.conf.mpm.max_process_count} + jitter)`;
    return undefined;
  }

  /**
   * SIGTERM (or the foreground's stop). `exitNow` is called at once when the worker holds no
   * connection; otherwise the connection is served as {@link leaving} says and {@link run} returns.
   * Signal handlers only run in the event loop's turns: the worker takes one after every wait
   * round that ended without work and at least every TURN_MS of continuous work, never between
   * accept and serve.
   */
  stop(reason: string, exitNow: () => void): void {
    if (this.#stopping) return;
    this.#stopping = reason;
    this.#log.info(`worker stopping , reason[${reason}] serving[${this.#busy}]`);
    if (!this.#busy) exitNow();
  }

  /** The worker's life; resolves with its exit code. */
  async run(): Promise<number> {
    this.slot.start(process.pid, this.opts.generation);
    this.#log.info(`worker started , mode[${this.opts.mode}] index[${this.opts.index}] generation[${this.opts.generation}]`);
    try {
      if (this.opts.mode === 'fork') {
        await this.#serve(this.opts.fd, peerOf(this.opts.fd));
        return EXIT.OK;
      }
      return await this.#loop();
    } finally {
      this.slot.state('GRACEFUL');
      await this.resolver.close();
    }
  }

  async #loop(): Promise<number> {
    const { lock, fd } = this.opts;
    noDelayListen(fd);
    recvTimeoutListen(fd, ROUND_MS);
    for (;;) {
      // connection after connection without a wait still gives the loop its turns (signals)
      const turn = this.#turns.due();
      if (turn) await turn;
      const why = this.leaving();
      if (why) {
        this.#log.info(`worker leaving , reason[${why}]`);
        return EXIT.OK;
      }
      this.slot.state('IDLE');
      if (lock) {
        try {
          if (!(await this.#takeLock(lock))) continue;
        } catch (e) {
          if (this.#stopping) return EXIT.OK;
          this.#log.error(`accept lock failed , reason[${errorText(e)}]`);
          return EXIT.CHILD_SICK;
        }
      }
      let conn: Accepted | undefined;
      try {
        this.slot.state('LISTEN');
        conn = await this.#acceptOne(fd);
      } catch (e) {
        this.#log.error(`accept failed , reason[${errorText(e)}]`);
        return EXIT.CHILD_SICK;
      } finally {
        lock?.unlock();
      }
      if (!conn) continue;
      await this.#serve(conn.fd, conn.peer, conn.recvRoundMs);
    }
  }

  /** The accept lock in rounds; false when the worker must leave (nothing taken). */
  async #takeLock(lock: AcceptLock): Promise<boolean> {
    for (;;) {
      if (this.leaving()) return false;
      flushStaleLogs(); // about to wait for the lock: lines held a while go out first (lib/log.ts)
      if (lock.lockWithin(ACCEPT_ROUND_MS) === 'locked') return true;
      await this.#turns.now();
      this.resolver.idle();
    }
  }

  /** Wait for and accept one connection (the lock held); undefined when the worker must leave. */
  async #acceptOne(fd: number): Promise<Accepted | undefined> {
    for (;;) {
      // checked before every accept4: a worker told to go never takes a connection from the queue
      if (this.leaving()) return undefined;
      if (waitFd(fd, POLLIN, ACCEPT_ROUND_MS) === 'ready') {
        const c = acceptNow(fd);
        if (c) return c;
        continue;
      }
      await this.#turns.now();
    }
  }

  /** `recvRoundMs` > 0: the fd is acceptNow's, a blocking socket with this receive timeout. */
  async #serve(fd: number, peer: Peer, recvRoundMs = 0): Promise<void> {
    this.#busy = true;
    this.slot.connection();
    try {
      await serveConnection(fd, peer, this.#host, recvRoundMs);
    } finally {
      this.#busy = false;
      this.slot.state('IDLE');
      const now = Date.now();
      if (now - this.#idleWorkAt >= IDLE_WORK_MS) {
        this.#idleWorkAt = now;
        this.resolver.idle();
      }
    }
  }
}

/** Make sure a worker's file folder exists and holds nothing from an earlier life. */
export function resetFileDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
}

/**
 * A worker: serves connections one at a time until told to go (IBP §2.5.1, httpd's child_main in
 * small steps). In a pool (STATIC/DYNAMIC) it is a follower queueing for the accept lock, the
 * leader while it holds it:
 *
 *   recycle check → IDLE → lock → LISTEN (poll + accept) → unlock → WORKING → serve → idle work
 *
 * In FORK mode it serves the one connection the manager accepted for it and exits. In foreground
 * mode (`ibas -a start --foreground`) the same loop runs inside the one process, without a manager.
 *
 * It writes only its own scoreboard slot. SIGTERM: a worker that is not serving exits at once (a
 * held accept lock goes back through SEM_UNDO; nothing was accepted); a worker serving a
 * connection finishes the running transaction, then closes the connection and exits.
 * max_process_count > 0: after that many transactions the worker closes its connection between
 * transactions and exits; the manager replaces it (recycling).
 */
import fs from 'node:fs';
import type net from 'node:net';
import { errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import type { Logger } from '../lib/log.js';
import { looksBinary } from '../lib/protocol/frame.js';
import { TX_FLAG } from '../lib/protocol/codec.js';
import { acceptOne, socketOf } from './accept.js';
import type { AcceptLock } from './accept-lock.js';
import { AppResolver } from './app-resolver.js';
import type { Instance } from './instance.js';
import type { Scoreboard, SlotWriter } from './scoreboard.js';
import { serveBinary, type ConnectionContext, type ServedConnection } from './serve-binary.js';
import { HttpAdapter } from './serve-http.js';
import { TransactionRunner, type TxGuard } from './transaction.js';
import { TxLog } from './tx-log.js';
import type { AlarmGuard } from './tx-guard.js';
import { TRANSPORT } from './last-answer.js';

export type WorkerMode = 'pool' | 'fork' | 'foreground';

/** One round of the leader's poll on the main thread (see acceptOne). */
const LEADER_POLL_MS = 100;

export interface WorkerOptions {
  inst: Instance;
  mode: WorkerMode;
  /** This worker's scoreboard slot (also its index in logs and the app context). */
  index: number;
  generation: number;
  scoreboard: Scoreboard;
  /** pool / foreground: the listen fd; fork: the accepted connection's fd. */
  fd: number;
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
  readonly #ctx: ConnectionContext;
  readonly #http: HttpAdapter;
  #stopping: string | undefined;
  #serving: ServedConnection | undefined;
  #busy = false;
  #onIdleStop: (() => void) | undefined;
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
    this.runner = new TransactionRunner(this.resolver, this.slot, inst.fileDir(opts.index), opts.log, opts.alarm ?? opts.guard);
    const base = inst.conf.mpm.max_process_count;
    const jitter = inst.conf.mpm.max_process_count_jitter ?? 0;
    const maxCount = base > 0 ? base + Math.floor(Math.random() * (jitter + 1)) : 0;
    this.maxCount = maxCount;
    this.#ctx = {
      runner: this.runner,
      limits: inst.limits,
      log: opts.log,
      txLog: new TxLog(opts.log),
      load: () => opts.scoreboard.load(),
      grantable: (inst.conf.security.compress_flag ? TX_FLAG.COMPRESS : 0) | TX_FLAG.PREPARE,
      compressMin: () => this.resolver.minCompressSize(),
      idleTimeoutMs: inst.comm.idleTimeoutMs,
      mustClose: () => this.#stopping !== undefined || (maxCount > 0 && this.slot.count >= maxCount),
      countError: () => this.slot.error(),
      onPending: (fn) => this.opts.alarm?.pending(fn),
    };
    this.#http = new HttpAdapter();
  }

  /** Why the worker is leaving, or undefined while it serves on. */
  leaving(): string | undefined {
    if (this.#stopping) return this.#stopping;
    const max = this.maxCount;
    if (max > 0 && this.slot.count >= max) return `recycled after ${this.slot.count} transactions (max_process_count ${this.opts.inst.conf.mpm.max_process_count} + jitter)`;
    return undefined;
  }

  /**
   * SIGTERM (or the foreground's stop). `exitNow` is called at once when the worker is not
   * serving a connection; otherwise the connection is closed after its running transaction and
   * {@link run} returns.
   */
  stop(reason: string, exitNow: () => void): void {
    if (this.#stopping) return;
    this.#stopping = reason;
    this.#log.info(`worker stopping , reason[${reason}] serving[${this.#busy}]`);
    if (!this.#busy) {
      exitNow();
      return;
    }
    this.#onIdleStop = exitNow;
    this.#serving?.requestClose(`server stopping (${reason}): reconnect to another worker`);
  }

  /** The worker's life; resolves with its exit code. */
  async run(): Promise<number> {
    this.slot.start(process.pid, this.opts.generation);
    this.#log.info(`worker started , mode[${this.opts.mode}] index[${this.opts.index}] generation[${this.opts.generation}]`);
    try {
      if (this.opts.mode === 'fork') {
        this.slot.connection();
        await this.#serve(this.opts.fd);
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
    for (;;) {
      const why = this.leaving();
      if (why) {
        this.#log.info(`worker leaving , reason[${why}]`);
        return EXIT.OK;
      }
      this.slot.state('IDLE');
      if (lock) {
        try {
          await lock.lock();
        } catch (e) {
          if (this.#stopping) return EXIT.OK;
          this.#log.error(`accept lock failed , reason[${errorText(e)}]`);
          return EXIT.CHILD_SICK;
        }
      }
      let conn = -1;
      try {
        if (this.leaving()) continue;
        this.slot.state('LISTEN');
        // a pool's leader polls on its own thread (rounds of 100 ms, signals cut them short): its
        // loop has nothing else to do while it holds the lock, and the pool-thread hop per
        // connection is gone
        conn = await acceptOne(fd, () => this.leaving() !== undefined, 500, lock ? LEADER_POLL_MS : 0);
      } catch (e) {
        this.#log.error(`accept failed , reason[${errorText(e)}]`);
        return EXIT.CHILD_SICK;
      } finally {
        lock?.unlock();
      }
      if (conn < 0) continue;
      this.slot.connection();
      await this.#serve(conn);
      this.resolver.idle();
    }
  }

  async #serve(fd: number): Promise<void> {
    this.#busy = true;
    let socket: net.Socket | undefined;
    try {
      socket = socketOf(fd);
      const first = await firstChunk(socket, this.opts.inst.comm.idleTimeoutMs);
      if (first === undefined) return;
      const transport = looksBinary(first) ? TRANSPORT.BINARY : TRANSPORT.HTTP;
      this.opts.alarm?.connection(fd, transport);
      this.slot.transport(fd, transport);
      this.#serving = looksBinary(first) ? serveBinary(socket, first, this.#ctx) : this.#http.serve(socket, first, this.#ctx);
      if (this.#stopping) this.#serving.requestClose(`server stopping (${this.#stopping})`);
      await this.#serving.done;
    } catch (e) {
      this.#log.error({ err: errorText(e), stack: (e as Error)?.stack }, `connection failed , reason[${errorText(e)}]`);
      socket?.destroy();
    } finally {
      this.opts.alarm?.connection(-1, TRANSPORT.NONE);
      this.opts.alarm?.pending(undefined);
      this.slot.transport(-1, TRANSPORT.NONE);
      this.#serving = undefined;
      this.#busy = false;
      this.slot.state('IDLE');
      if (this.#onIdleStop) this.#onIdleStop();
    }
  }
}

/** The first bytes of a connection (to choose the adapter), or undefined when it closed/idled first. */
function firstChunk(socket: net.Socket, idleMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const done = (b: Buffer | undefined): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      resolve(b);
    };
    const onData = (b: Buffer): void => {
      socket.pause();
      done(b);
    };
    const onClose = (): void => done(undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      done(undefined);
    }, idleMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

/** Make sure a worker's file folder exists and holds nothing from an earlier life. */
export function resetFileDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
}

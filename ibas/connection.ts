/**
 * The connection driver: serves one accepted fd from its first byte to its close on the worker's
 * main thread with synchronous libc calls (ibas/conn-io.ts), the protocol being a sans-IO session
 * (ibas/session-binary.ts or ibas/session-http.ts, chosen by the first bytes):
 *
 *   recv (MSG_DONTWAIT) ─▶ session.push ─▶ (apps run inside, in order) ─▶ send the chunk's answers
 *        │ nothing yet                                                     in one call where possible
 *        ▼
 *   recv blocking ≤ ROUND_MS (SO_RCVTIMEO), or poll(fd, min(deadline left, ROUND_MS)) when less
 *   than a round is left or the fd is not blocking ── timeout / signal ──▶ a turn of the event loop
 *
 * Every wait has the deadline of its phase (ibas/deadlines.ts); a round ends at most every
 * ROUND_MS, and the event loop also gets a turn at least every TURN_MS of continuous work (here
 * between the messages of a connection, in ibas/worker.ts between connections), so a worker that
 * serves without pause still takes signals (stop, log reopen) and timers.
 *
 * Send-ahead: an app that sends its response ahead runs inside session.push; the session then
 * queues the complete answer and calls the driver's flushNow (#sendSync), which sends it on the
 * fd at once (blocking poll while the peer's window is full, up to comm.send_timeout) so the
 * client has it while the app goes on.
 *
 * Leaving (stop, USR2, shrink, recycle): a connection is never abandoned with a request on it.
 * Between transactions the worker looks once more at the socket (MSG_DONTWAIT): what is there
 * is served; a connection that has completed nothing yet is waited for (its header deadline)
 * and served; only an idle connection with nothing pending is closed (binary: ERROR
 * POOL_STOPPING first; HTTP: the last answer said Connection: close, or the connection just ends).
 */
import { errorText } from '../lib/errors.js';
import { flushLogs, type Logger } from '../lib/log.js';
import { looksBinary } from '../lib/protocol/frame.js';
import { AGAIN, BROKEN, POLLIN, POLLOUT, closeConn, recvNow, recvWait, sendNow, waitFd, type Peer } from './conn-io.js';
import { ReadClock, phaseMs, type Phase } from './deadlines.js';
import { TRANSPORT, type Transport } from './last-answer.js';
import type { CommSettings } from '../lib/config/ibas-settings.js';
import { BinarySession } from './session-binary.js';
import type { HttpSession } from './session-http.js';
import type { ConnectionContext, Session } from './session.js';

/** Longest single blocking wait before the event loop gets a turn. */
export const ROUND_MS = 50;
/** Longest stretch of continuous serving before the event loop gets a turn. */
export const TURN_MS = 30;

const RECV_SIZE = 64 * 1024;
/** #sendQueued: part of the answer is still to send (the peer's window is full). */
const WAIT = 'wait';
/**
 * The receive buffer of the worker: one, not one per connection (a worker serves one connection
 * at a time and every chunk is copied out of it before the next recv). A 64 KiB Buffer per
 * connection is external memory that drives V8 into a major GC every few hundred connections.
 */
const recvBuf = Buffer.allocUnsafe(RECV_SIZE);

const loopTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The worker's turns of its event loop: one when a wait round ended without work, and at least
 * every TURN_MS of continuous work whatever the work is (back-to-back calls on one connection,
 * or connection after connection taken at once from the accept queue). Signals (stop, log
 * reopen) are heard only in a turn (lib/signals.ts), so the clock counts from the last real turn
 * and nothing else resets it: a lock or a connection taken without waiting is not a turn.
 */
export class LoopTurns {
  #last = Date.now();

  /** A turn now (after a wait round that ended without work); the buffered log lines go out first. */
  async now(): Promise<void> {
    flushLogs();
    await loopTurn();
    this.#last = Date.now();
  }

  /** A turn if the last one is TURN_MS old (continuous work). */
  due(): Promise<void> | undefined {
    return Date.now() - this.#last >= TURN_MS ? this.now() : undefined;
  }
}

/** What the worker lends the driver for one connection. */
export interface ConnectionHost {
  ctx: ConnectionContext;
  comm: CommSettings;
  log: Logger;
  turns: LoopTurns;
  /** Why the worker is leaving, or undefined. */
  leaving(): string | undefined;
  /** The connection's protocol is known (tier-1 / crash answers, scoreboard). */
  transport(fd: number, t: Transport): void;
  /** Where the answers not yet sent are (the AlarmGuard writes them before a last answer). */
  pending(fn: (() => Buffer | undefined) | undefined): void;
  /** The connection holds the worker without running a transaction (reading a request). */
  reading(): void;
  /** A message was completed; `idle`: nothing of the next one is in yet (the slot says KEEPALIVE). */
  between(idle: boolean): void;
  /** A wait round passed with nothing to do (drop stale apps, follow the config). */
  quiet(): void;
}

/**
 * The HTTP adapter (ibas/session-http.ts with http-parser-js and node:http), loaded by the first
 * HTTP connection a worker serves: a worker that only speaks the binary protocol never holds it
 * (~1 MB of RSS, issue 9). The first HTTP request of each worker waits for the load (a few ms).
 */
let HttpSessionOf: typeof HttpSession | undefined;
async function loadHttpSession(): Promise<void> {
  HttpSessionOf ??= (await import('./session-http.js')).HttpSession;
}

/**
 * Serve one connection until it closes; the fd is closed on return. `recvRoundMs` > 0: the fd is a
 * blocking socket whose SO_RCVTIMEO is that long (conn-io acceptNow); 0: poll, then recv.
 */
export async function serveConnection(fd: number, peer: Peer, host: ConnectionHost, recvRoundMs = 0): Promise<void> {
  const c = new Connection(fd, peer, host, recvRoundMs);
  try {
    await c.run();
  } catch (e) {
    host.log.error({ err: errorText(e), stack: (e as Error)?.stack }, `connection failed , client[${peer.ip}:${peer.port}] reason[${errorText(e)}]`);
    c.lingerOnClose = true;
  } finally {
    c.finish();
  }
}

class Connection {
  readonly fd: number;
  readonly peer: Peer;
  readonly host: ConnectionHost;
  /**
   * > 0: a blocking socket with SO_RCVTIMEO of this many ms (conn-io acceptNow): a wait of a whole
   * round is one recv (recvWait). 0 (FORK: the manager's non-blocking fd): poll, then recv.
   */
  readonly recvRoundMs: number;
  readonly clock: ReadClock;
  session: Session | undefined;
  /** Server-side close: half-close and drop what the peer still sends before close. */
  lingerOnClose = false;
  /** Bytes of the answer being sent that the kernel has not taken yet. */
  #unsent: Buffer | undefined;
  /** When the send of #unsent began (its send deadline counts from there). */
  #unsentSince = 0;
  /** The worker is leaving: this connection had its one last read (see the loop). */
  #lastRead = false;
  /** The last flush sent an answer and the session waits for the next message. */
  #answered = false;

  constructor(fd: number, peer: Peer, host: ConnectionHost, recvRoundMs: number) {
    this.fd = fd;
    this.recvRoundMs = recvRoundMs;
    this.peer = peer;
    this.host = host;
    this.clock = new ReadClock(host.comm, Date.now());
    host.reading();
  }

  finish(): void {
    this.host.pending(undefined);
    this.host.transport(-1, TRANSPORT.NONE);
    try {
      this.session?.closed();
    } finally {
      closeConn(this.fd, this.lingerOnClose);
    }
  }

  #client(): string {
    return `${this.peer.ip}:${this.peer.port}`;
  }

  #open(first: Buffer): Session {
    const binary = looksBinary(first);
    const t = binary ? TRANSPORT.BINARY : TRANSPORT.HTTP;
    const flushNow = (): boolean => this.#sendSync(s);
    const s: Session = binary ? new BinarySession(this.host.ctx, this.peer, flushNow) : new HttpSessionOf!(this.host.ctx, this.peer, flushNow);
    this.host.transport(this.fd, t);
    this.host.pending(() => {
      const out = s.out;
      if (out.length === 0) return this.#unsent;
      const all = this.#unsent ? [this.#unsent, ...out] : out;
      return all.length === 1 ? all[0] : Buffer.concat(all);
    });
    this.session = s;
    return s;
  }

  async run(): Promise<void> {
    const buf = recvBuf;
    for (;;) {
      const s = this.session;
      if (s && (s.out.length > 0 || s.afterSend.length > 0)) {
        // the answers usually fit the socket's buffer: sent without a promise; a full window waits
        const sent = this.#sendQueued(s);
        if (sent === false || (sent === WAIT && !(await this.#drain(s)))) return;
      }
      if (s?.closing) {
        this.lingerOnClose = true;
        return;
      }
      const turn = this.host.turns.due();
      if (turn) await turn;
      if (s && s.input() === 'IDLE' && s.completed > 0) {
        // between transactions: a worker told to leave reads the socket once more and serves
        // what was already sent, then goes (a client that keeps sending cannot hold it)
        if (this.#lastRead) {
          s.leave(`server leaving (${this.host.leaving() ?? 'stop'}): reconnect to another worker`);
          continue;
        }
        if (this.host.leaving()) this.#lastRead = true;
      }
      // an answer just went out and nothing more is in: the peer is reading it, the next request
      // is not here yet (ping-pong) — wait for it first instead of a recv that finds nothing (one
      // system call less a transaction; pipelined bytes already there make the wait return at once).
      // A fresh connection on a blocking socket goes to its wait (recvWait) at once too.
      const waitFirst = this.#answered || (s === undefined && this.recvRoundMs > 0);
      let n = waitFirst && !this.host.leaving() ? AGAIN : recvNow(this.fd, buf);
      this.#answered = false;
      if (n === AGAIN) {
        // nothing to read now
        const input = s ? s.input() : 'IDLE';
        const completed = s?.completed ?? 0;
        if (input === 'IDLE' && completed > 0) {
          const why = this.host.leaving();
          if (why) {
            // idle, nothing pending in the socket: the worker may go
            s!.leave(`server leaving (${why}): reconnect to another worker`);
            continue;
          }
        }
        const { phase, at } = this.clock.deadline(input);
        const left = at - Date.now();
        if (left <= 0) {
          this.#expire(phase, false);
          if (!this.session) {
            this.lingerOnClose = true;
            return;
          }
          continue;
        }
        if (this.recvRoundMs > 0 && left >= this.recvRoundMs) {
          // the wait and the read in one call: recv blocks up to one round, never past the deadline
          n = recvWait(this.fd, buf);
        } else if (waitFd(this.fd, POLLIN, Math.min(left, ROUND_MS)) === 'ready') {
          continue;
        }
        if (n === AGAIN) {
          await this.#turn();
          if (input === 'IDLE') this.host.quiet();
          continue;
        }
      }
      if (n > 0) {
        const chunk = Buffer.allocUnsafe(n);
        buf.copy(chunk, 0, 0, n);
        if (!this.session && !HttpSessionOf && !looksBinary(chunk)) await loadHttpSession();
        this.#received(chunk);
        continue;
      }
      // the peer's end (0) or a broken connection
      if (s) {
        s.end(n === 0 ? 'closed' : 'reset');
        if (s.out.length > 0 && this.#sendQueued(s) === WAIT) await this.#drain(s);
      }
      return;
    }
  }

  #received(chunk: Buffer): void {
    const s = this.session ?? this.#open(chunk);
    const wasIdle = s.input() === 'IDLE';
    const before = s.completed;
    if (wasIdle) {
      this.clock.started(Date.now());
      if (before > 0) this.host.reading();
    }
    s.push(chunk);
    if (s.completed !== before) {
      const idle = s.input() === 'IDLE';
      this.host.between(idle);
      if (idle) this.clock.idle(Date.now());
      else this.clock.started(Date.now());
    }
  }

  #turn(): Promise<void> {
    return this.host.turns.now();
  }

  /** A deadline expired: one log line, the error counter, the protocol's last word, close. */
  #expire(phase: Phase, answerInFlight: boolean): void {
    const ms = phaseMs(this.host.comm, phase);
    const line = `connection deadline , phase[${phase}] client[${this.#client()}] ms[${ms}] , closed`;
    // every phase counts in the slot's errors (issue 9); an idle connection's end is only info
    this.host.ctx.countError();
    if (phase === 'KEEPALIVE') this.host.log.info({ client: this.#client() }, line);
    else this.host.log.warn({ client: this.#client() }, line);
    this.session?.expire(phase, ms, answerInFlight);
  }

  /**
   * Send what the session queued now, synchronously (from inside push: the app is still running,
   * so there is no event-loop turn; the wait for a full window is a blocking poll). The after-send
   * work stays queued for the normal flush. False: the connection is over.
   */
  #sendSync(s: Session): boolean {
    const out = s.out.splice(0, s.out.length);
    let data: Buffer | undefined = out.length === 0 ? undefined : out.length === 1 ? out[0]! : Buffer.concat(out);
    const started = Date.now();
    while (data && data.length > 0) {
      const n = sendNow(this.fd, data);
      if (n === BROKEN) return false;
      data = n === data.length ? undefined : data.subarray(n);
      if (!data) break;
      const left = started + this.host.comm.sendTimeoutMs - Date.now();
      if (left <= 0) {
        this.#expire('SEND', true);
        this.lingerOnClose = true;
        return false;
      }
      waitFd(this.fd, POLLOUT, Math.min(left, ROUND_MS));
    }
    return true;
  }

  /**
   * Send what the session queued in one try, then run its after-send work. True: all sent; false:
   * the connection is over; WAIT: the kernel took part of it (the rest is #unsent, for
   * {@link #drain}).
   */
  #sendQueued(s: Session): boolean | typeof WAIT {
    const out = s.out.splice(0, s.out.length);
    const data: Buffer | undefined = out.length === 0 ? undefined : out.length === 1 ? out[0]! : Buffer.concat(out);
    if (data && data.length > 0) {
      if (!this.#sendSome(s, data)) return false;
      if (this.#unsent) {
        this.#unsentSince = Date.now();
        return WAIT;
      }
    }
    this.#sent(s, out.length > 0);
    return true;
  }

  /** One send of `data`; what the kernel did not take is #unsent. False: broken (the session is ended). */
  #sendSome(s: Session, data: Buffer): boolean {
    const n = sendNow(this.fd, data);
    if (n === BROKEN) {
      this.#unsent = undefined;
      s.end('reset while answering');
      return false;
    }
    this.#unsent = n === data.length ? undefined : data.subarray(n);
    return true;
  }

  /** The answers are out: run the session's after-send work. */
  #sent(s: Session, answered: boolean): void {
    this.#unsent = undefined;
    const after = s.afterSend.splice(0, s.afterSend.length);
    for (const fn of after) fn();
    this.#answered = answered && s.input() === 'IDLE';
  }

  /**
   * The rest of an answer (#unsent, after {@link #sendQueued} said WAIT), then the session's
   * after-send work. Waits in rounds while the peer's window is full, up to comm.send_timeout from
   * the first byte. False: the connection is over (broken, or the send deadline expired).
   */
  async #drain(s: Session): Promise<boolean> {
    while (this.#unsent) {
      const left = this.#unsentSince + this.host.comm.sendTimeoutMs - Date.now();
      if (left <= 0) {
        this.#unsent = undefined;
        this.#expire('SEND', true);
        this.lingerOnClose = true;
        return false;
      }
      if (waitFd(this.fd, POLLOUT, Math.min(left, ROUND_MS)) !== 'ready') await this.#turn();
      if (!this.#sendSome(s, this.#unsent)) return false;
    }
    this.#sent(s, true);
    return true;
  }
}

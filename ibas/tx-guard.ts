/**
 * Tier 1 of the three-tier timeouts and the crash answer, inside a worker (issue 5). The app call
 * is synchronous and blocks the event loop, so no JS timer can end it: right before somain the
 * worker arms a native deadline of timeout2 (lib/native/crash.ts, the "guard" of ibp_crash.c: a
 * watchdog thread, two memory stores per call, no timer system call) together with the
 * connection's fd; right after, it disarms. When the deadline passes the watchdog writes the
 * prepared timeout answer (ibas/last-answer.ts) to the
 * client and the worker dies BY SIGALRM; the manager sees the signal, logs tier 1 and replaces it.
 * A crash writes the crash answer the same way.
 *
 * Answers still held by the adapter (the binary adapter corks a chunk's answers: the PRE_ANSWER
 * of a pipelined transaction is not sent yet while its app runs) go out first (the guard's HELD
 * bytes, copied at each arm), so the client reads PRE_ANSWER then the timeout RESPONSE, in
 * order. The slot says whether such answers are held, so the manager's tier 2/3 answer can put
 * a pre-answer first too.
 *
 * Send-ahead: once the app's answer has left early (answered()), the guard is re-armed without the
 * connection for the time left — a tier-1 timeout or a crash still ends the worker but writes
 * nothing (ibp_guard_answer needs an fd) — and the slot's transport says none, so the manager
 * takes no duplicate of the connection for a tier 2/3 answer either. The client never reads two
 * answers for one transaction. disarm() (the app returned) restores the slot's transport.
 *
 * The prepared frames are reused while app, timeout2 and transport stay the same, so a
 * transaction costs two small native calls (three when the held answers changed).
 */
import { GUARD, guardArm, guardDisarm, guardFrame } from '../lib/native/crash.js';
import { crashAnswer, timeoutAnswer, TRANSPORT, type Transport } from './last-answer.js';
import type { SlotWriter } from './scoreboard.js';
import type { TxGuard } from './transaction.js';

const EMPTY = Buffer.alloc(0);
/** A copy of the native HELD bytes (the guard of ibp_crash.c is one per process, like this). */
let heldNative: Buffer = EMPTY;

export class AlarmGuard implements TxGuard {
  #fd = -1;
  #transport: Transport = TRANSPORT.NONE;
  /** What the prepared TIMEOUT and CRASH frames were built for (fd armed?, transport, app, timeout2). */
  #prepFd = false;
  #prepTransport: Transport | -1 = -1;
  #prepApp = '';
  #prepMs = -1;
  #pending: (() => Buffer | undefined) | undefined;
  #slot: SlotWriter | undefined;
  #held = false;
  #answerKey = '';
  #answerCache: { timeout: Buffer; crash: Buffer } | undefined;
  /** answered() disarmed the connection and hid the transport from the manager. */
  #silenced = false;
  /** When the alarm was armed, and for how long (answered() re-arms for the time left). */
  #armedAt = 0;
  #armedMs = 0;

  attach(slot: SlotWriter): void {
    this.#slot = slot;
  }

  /** The connection the next transactions answer on. */
  connection(fd: number, transport: Transport): void {
    this.#fd = fd;
    this.#transport = transport;
  }

  /** Where the adapter's held (unsent) answers are. */
  pending(fn: (() => Buffer | undefined) | undefined): void {
    this.#pending = fn;
  }

  arm(app: string, timeout2Ms: number): void {
    const hasFd = this.#fd >= 0;
    const held = hasFd ? this.#pending?.() : undefined;
    const t = this.#transport === TRANSPORT.NONE ? TRANSPORT.BINARY : this.#transport;
    if (hasFd !== this.#prepFd || t !== this.#prepTransport || app !== this.#prepApp || timeout2Ms !== this.#prepMs) {
      const a = hasFd ? this.#answers(t, app, timeout2Ms) : { timeout: Buffer.alloc(0), crash: Buffer.alloc(0) };
      guardFrame(GUARD.TIMEOUT, a.timeout);
      guardFrame(GUARD.CRASH, a.crash);
      this.#prepFd = hasFd;
      this.#prepTransport = t;
      this.#prepApp = app;
      this.#prepMs = timeout2Ms;
    }
    // the held answers go out before the prepared one (the native side writes HELD first): copied
    // to the native side only when they differ from what it holds (a pipelined PRE_ANSWER is
    // usually the same bytes transaction after transaction)
    const want = held ?? EMPTY;
    if (!want.equals(heldNative)) {
      guardFrame(GUARD.HELD, want);
      heldNative = want.length === 0 ? EMPTY : Buffer.from(want);
    }
    if ((held !== undefined) !== this.#held) {
      this.#held = held !== undefined;
      this.#slot?.held(this.#held);
    }
    this.#armedAt = Date.now();
    this.#armedMs = timeout2Ms;
    guardArm(this.#fd, timeout2Ms);
  }

  /** The encoded timeout and crash answers, kept while transport, app and timeout2 stay the same. */
  #answers(t: Transport, app: string, timeout2Ms: number): { timeout: Buffer; crash: Buffer } {
    const key = `${t}|${app}|${timeout2Ms}`;
    if (this.#answerKey !== key || !this.#answerCache) {
      this.#answerCache = { timeout: timeoutAnswer(t, app, timeout2Ms, 1), crash: crashAnswer(t, app) };
      this.#answerKey = key;
    }
    return this.#answerCache;
  }

  disarm(): void {
    guardDisarm();
    if (this.#silenced) {
      this.#silenced = false;
      this.#slot?.transport(this.#fd, this.#transport);
    }
  }

  /**
   * The running transaction's answer left (send-ahead). The alarm stays armed (a runaway app still
   * ends at timeout2) but nothing more is written to the client: the prepared answers are emptied
   * and the slot's transport is cleared for the manager's tiers 2/3 (restored by disarm).
   */
  answered(): void {
    // re-armed without a connection (the native handler writes nothing), for the time left
    const left = this.#armedMs > 0 ? Math.max(1, this.#armedMs - (Date.now() - this.#armedAt)) : 0;
    guardDisarm();
    guardArm(-1, left);
    if (this.#held) {
      this.#held = false;
      this.#slot?.held(false);
    }
    this.#silenced = true;
    this.#slot?.transport(this.#fd, TRANSPORT.NONE);
  }
}

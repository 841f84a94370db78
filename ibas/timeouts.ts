/**
 * Tiers 2 and 3 of IBP's three-tier timeouts (§2.5.6), run by the manager on every tick. Tier 1
 * is the worker's own alarm at timeout2 (ibas/tx-guard.ts: a synchronous app call blocks the
 * worker's event loop, so no JS timer can end it).
 *
 *   age of the running transaction > 1.5 × timeout2   SIGTERM to the worker (tier 2)
 *   age of the running transaction > 2   × timeout2   SIGKILL (tier 3)
 *
 * The age comes from the worker's scoreboard slot (transaction start, timeout2 of its app); each
 * action is taken once per transaction and logged with the tier.
 *
 * The client's answer: before the first signal the manager takes a duplicate of the worker's
 * connection fd (pidfd_open + pidfd_getfd, Linux ≥ 5.6; the worker is the manager's child, so
 * ptrace access is granted). When the worker then dies by the signal of a tier, the manager
 * writes the timeout answer naming that tier (ibas/last-answer.ts) on the duplicate and closes
 * it; if the worker finished the transaction after all and left normally, the duplicate is just
 * closed. A worker that died by SIGALRM (tier 1) answered its client itself; the reaper logs it
 * here too, so every tier has its line in the monitor log (and, at warn, in the event log).
 */
import type { Logger } from '../lib/log.js';
import { koffi, libc } from '../lib/native/libc.js';
import { MSG } from '../lib/native/posix-constants.js';
import { preAnswer, timeoutAnswer, TRANSPORT, type Transport } from './last-answer.js';
import type { Scoreboard, SlotView } from './scoreboard.js';

export interface TimeoutAction {
  pid: number;
  index: number;
  tier: 2 | 3;
  app: string;
  ageMs: number;
  timeout2Ms: number;
}

const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const syscall = libc.func('long syscall(long number, ...)');
const closeFd = libc.func('int close(int fd)');
/** The duplicate shares the worker's blocking socket: the manager's one try must never wait. */
const sendFd = libc.func('long send(int fd, const uint8_t *buf, unsigned long n, int flags)');

/** A duplicate of fd `fd` of process `pid`, or -1 (not our child any more, old kernel, …). */
export function takeFd(pid: number, fd: number): number {
  if (fd < 0) return -1;
  const pidfd = Number(syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (pidfd < 0) return -1;
  try {
    return Number(syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', fd, 'unsigned int', 0));
  } finally {
    closeFd(pidfd);
  }
}
void koffi;

interface Acted {
  tx: number;
  tier: 2 | 3;
  app: string;
  timeout2Ms: number;
  /** The duplicate of the connection, -1 when none could be taken. */
  dup: number;
  transport: Transport;
  /** The worker held its pre-answer unsent: ours goes first. */
  held: boolean;
}

export class TimeoutScanner {
  /** pid → the transaction already acted on, and the tier. */
  readonly #acted = new Map<number, Acted>();

  /** Scan the slots of `workers`; send signals; return what was done. */
  scan(sb: Scoreboard, workers: Iterable<{ pid: number; index: number }>, log: Logger, now = Date.now()): TimeoutAction[] {
    const actions: TimeoutAction[] = [];
    for (const w of workers) {
      const s = sb.read(w.index);
      if (s.pid !== w.pid || s.state !== 'WORKING' || s.txStartAt <= 0 || s.timeout2Ms <= 0) continue;
      const age = now - s.txStartAt;
      const tier: 2 | 3 | undefined = age > 2 * s.timeout2Ms ? 3 : age > 1.5 * s.timeout2Ms ? 2 : undefined;
      if (!tier) continue;
      const prev = this.#acted.get(w.pid);
      if (prev && prev.tx === s.txStartAt && prev.tier >= tier) continue;
      let dup = prev && prev.tx === s.txStartAt ? prev.dup : -1;
      if (prev && prev.tx !== s.txStartAt && prev.dup >= 0) closeFd(prev.dup);
      if (dup < 0 && s.transport) dup = takeFd(w.pid, s.connFd);
      this.#acted.set(w.pid, { tx: s.txStartAt, tier, app: s.app, timeout2Ms: s.timeout2Ms, dup, transport: s.transport as Transport, held: s.held });
      const sig = tier === 3 ? 'SIGKILL' : 'SIGTERM';
      log.warn({ pid: w.pid, slot: w.index, app: s.app, ageMs: Math.round(age), timeout2Ms: s.timeout2Ms, tier }, `transaction timeout tier ${tier} , pid[${w.pid}] slot[${w.index}] app[${s.app}] age_ms[${Math.round(age)}] timeout2_ms[${s.timeout2Ms}] , ${sig} sent`);
      try {
        process.kill(w.pid, sig);
      } catch {
        // already gone: the reaper will see it
      }
      actions.push({ pid: w.pid, index: w.index, tier, app: s.app, ageMs: age, timeout2Ms: s.timeout2Ms });
    }
    return actions;
  }

  /**
   * The reaper saw `pid` exit. Answers the client of a transaction ended by tier 2 or 3, logs a
   * tier-1 end; returns the tier that ended the worker (or undefined).
   */
  exited(pid: number, signal: NodeJS.Signals | null, last: SlotView, log: Logger): 1 | 2 | 3 | undefined {
    const acted = this.#acted.get(pid);
    this.#acted.delete(pid);
    if (signal === 'SIGALRM') {
      if (last.txStartAt > 0) {
        log.warn({ pid, slot: last.index, app: last.app, tier: 1 }, `transaction timeout tier 1 , pid[${pid}] slot[${last.index}] app[${last.app}] timeout2_ms[${last.timeout2Ms}] , the worker's alarm ended it (the worker answered the client)`);
      }
      if (acted && acted.dup >= 0) closeFd(acted.dup);
      return 1;
    }
    if (!acted) return undefined;
    const tier = signal === 'SIGKILL' && acted.tier === 3 ? 3 : signal === 'SIGTERM' ? 2 : signal === 'SIGKILL' ? 3 : undefined;
    if (acted.dup >= 0) {
      if (tier !== undefined) {
        const answer = timeoutAnswer(acted.transport, acted.app, acted.timeout2Ms, tier);
        const bytes = acted.held && acted.transport === TRANSPORT.BINARY ? Buffer.concat([preAnswer(), answer]) : answer;
        const n = Number(sendFd(acted.dup, bytes, bytes.length, MSG.DONTWAIT | MSG.NOSIGNAL));
        log.info({ pid, tier }, `timeout answer , pid[${pid}] app[${acted.app}] tier[${tier}] ${n === bytes.length ? 'written to the client' : 'could not be written (the client is gone)'}`);
      }
      closeFd(acted.dup);
    }
    return tier;
  }

  /** Close every duplicate (manager stop). */
  clear(): void {
    for (const a of this.#acted.values()) if (a.dup >= 0) closeFd(a.dup);
    this.#acted.clear();
  }
}

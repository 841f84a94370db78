/**
 * Tiers 2 and 3 of IBP's three-tier timeouts (§2.5.6), run by the manager on every tick. Tier 1
 * is the worker's own alarm at timeout2 (a synchronous app call blocks the worker's event loop,
 * so no JS timer can end it — see issue 5 and TxGuard in transaction.ts).
 *
 *   age of the running transaction > 1.5 × timeout2   SIGTERM to the worker (tier 2)
 *   age of the running transaction > 2   × timeout2   SIGKILL (tier 3)
 *
 * The age comes from the worker's scoreboard slot (transaction start, timeout2 of its app); each
 * action is taken once per transaction and logged with the tier.
 */
import type { Logger } from '../lib/log.js';
import type { Scoreboard } from './scoreboard.js';

export interface TimeoutAction {
  pid: number;
  index: number;
  tier: 2 | 3;
  app: string;
  ageMs: number;
  timeout2Ms: number;
}

export class TimeoutScanner {
  /** pid → transaction start already acted on, per tier. */
  readonly #acted = new Map<number, { tx: number; tier: 2 | 3 }>();

  /** Scan the slots of `pids` (index by pid); send signals; return what was done. */
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
      this.#acted.set(w.pid, { tx: s.txStartAt, tier });
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

  forget(pid: number): void {
    this.#acted.delete(pid);
  }
}

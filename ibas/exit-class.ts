/**
 * What a worker's exit means, and what the manager does about it: the one table (httpd's
 * APEXIT_* handling, gunicorn's arbiter, Tuxedo's restartable servers). The reaper classifies
 * every exit with {@link classifyExit}, logs the class in its `worker exited` line and acts on
 * {@link EXIT_CLASSES}[class].action:
 *
 *   respawn   the pool policy replaces the worker on this tick
 *   backoff   the replacement waits a capped doubling delay (CHILD_SICK: something outside the
 *             worker is wrong; respawning at full speed would only spin)
 *   budget    a boot error: counted against the restart budget (monitor.max_restarts within
 *             monitor.restart_window); exhausted → halt with EXIT.CRASH_LOOP
 *   halt      the server stops and the manager exits non-zero (EXIT.CHILD_FATAL)
 *   none      the manager asked the worker to go (stop, shrink, upgrade): nothing to do
 *
 * `appCrash` marks the classes that count against the app that was running (crash-loop brake,
 * ibas/suspensions.ts): a worker killed inside a transaction by a signal the manager did not
 * send, or ended by a timeout tier.
 */
import { EXIT } from '../lib/exit-codes.js';
import type { WorkerState } from './scoreboard.js';

export type ExitAction = 'respawn' | 'backoff' | 'budget' | 'halt' | 'none';

export const EXIT_CLASSES = {
  /** Code 0, left on its own: max_process_count reached (or a FORK worker done with its connection). */
  recycled: { action: 'respawn', appCrash: false, level: 'info' },
  /** Asked to go by the manager (graceful stop, dynamic shrink, handover) and gone: code 0, SIGTERM or the stop timeout's SIGKILL. */
  stopped: { action: 'none', appCrash: false, level: 'info' },
  /** Killed by a signal the manager did not send, or any other non-zero code once it served. */
  crashed: { action: 'respawn', appCrash: true, level: 'warn' },
  /** Ended by a timeout tier (1: its own alarm, 2: SIGTERM, 3: SIGKILL of the manager). */
  timed_out: { action: 'respawn', appCrash: true, level: 'warn' },
  /** EXIT.CHILD_SICK: slow the respawning down. */
  sick: { action: 'backoff', appCrash: false, level: 'warn' },
  /** EXIT.CHILD_FATAL: stop the server. */
  fatal: { action: 'halt', appCrash: false, level: 'error' },
  /** EXIT.CHILD_INIT / EXIT.APP_LOAD, or any abnormal death before it was ready. */
  boot_error: { action: 'budget', appCrash: false, level: 'warn' },
} as const satisfies Record<string, { action: ExitAction; appCrash: boolean; level: 'info' | 'warn' | 'error' }>;

export type ExitClass = keyof typeof EXIT_CLASSES;

export interface ExitFacts {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The manager asked it to go (SIGTERM sent) before it exited. */
  retiring: boolean;
  /** Its last scoreboard state. */
  state: WorkerState;
  /** The timeout tier that ended it, if one did. */
  tier?: 1 | 2 | 3;
}

const BOOT_ERRORS = new Set<number>([EXIT.CHILD_INIT, EXIT.APP_LOAD]);

export function classifyExit(f: ExitFacts): ExitClass {
  if (f.code === EXIT.CHILD_FATAL) return 'fatal';
  if (f.code === EXIT.CHILD_SICK) return 'sick';
  if (f.tier !== undefined) return 'timed_out';
  const abnormal = f.signal !== null || f.code !== EXIT.OK;
  if ((f.code !== null && BOOT_ERRORS.has(f.code)) || (abnormal && f.state === 'STARTING')) return 'boot_error';
  if (f.retiring && (f.code === EXIT.OK || f.signal === 'SIGTERM' || f.signal === 'SIGKILL')) return 'stopped';
  if (!abnormal) return 'recycled';
  return 'crashed';
}

/** CHILD_SICK back-off: first delay, cap, and how long without a sick exit resets it. */
export const SICK_BACKOFF = { firstMs: 500, maxMs: 30_000, resetMs: 60_000 } as const;

/** The delay before respawning after the n-th consecutive sick exit (n ≥ 1): capped doubling. */
export function sickDelayMs(n: number): number {
  return Math.min(SICK_BACKOFF.firstMs * 2 ** Math.max(0, Math.min(n - 1, 16)), SICK_BACKOFF.maxMs);
}

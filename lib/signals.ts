/**
 * The signal map every IBP-TS daemon shares (nginx's `signals[]`, gunicorn's SIG_QUEUE).
 *
 * | signal  | action  | meaning                                                        |
 * |---------|---------|----------------------------------------------------------------|
 * | SIGTERM | stop    | graceful stop: stop taking new work, finish what runs, exit    |
 * | SIGINT  | stop    | same as SIGTERM (Ctrl-C in foreground mode)                    |
 * | SIGUSR1 | reopen  | reopen log files                                               |
 * | SIGUSR2 | special | component-defined: ibas upgrade, ibma stop_cleanly             |
 * | SIGHUP  | reload  | re-read config where the component supports it                 |
 *
 * The reopen action is built in so no daemon can forget it.
 *
 * When a handler runs: Node hears a signal only in a turn of the event loop (its poll phase), so
 * a process that runs synchronous work for long stretches (an ibas worker serving connections as
 * libc calls) must take a turn at least every few milliseconds of work, whatever the work is
 * (ibas/connection.ts LoopTurns). The handler then runs in that same turn: it is queued as a
 * microtask, which runs as soon as Node's signal callback returns, before the check phase where a
 * worker's next stretch of work resumes. (A `setImmediate` here would run only after that
 * next stretch, one turn later: a worker busy without pause then heard SIGTERM late or, if it
 * took no further turn, never.)
 */
import { reopenLogs } from './log.js';

export type SignalAction = 'stop' | 'reopen' | 'special' | 'reload';

export const SIGNAL_TABLE: readonly { signal: NodeJS.Signals; action: SignalAction }[] = [
  { signal: 'SIGTERM', action: 'stop' },
  { signal: 'SIGINT', action: 'stop' },
  { signal: 'SIGUSR1', action: 'reopen' },
  { signal: 'SIGUSR2', action: 'special' },
  { signal: 'SIGHUP', action: 'reload' },
];

export type SignalHandlers = Partial<Record<Exclude<SignalAction, 'reopen'>, (signal: NodeJS.Signals) => void>> & {
  /** Called after the logs were reopened. */
  reopen?: (signal: NodeJS.Signals) => void;
};

/**
 * Install the shared map. Each handler runs in a microtask right after Node's signal callback,
 * in the same turn of the event loop (see the header). Returns a function that removes the
 * handlers.
 */
export function installSignals(handlers: SignalHandlers): () => void {
  const installed: [NodeJS.Signals, () => void][] = [];
  for (const { signal, action } of SIGNAL_TABLE) {
    const handler = handlers[action];
    if (action !== 'reopen' && !handler) continue;
    const fn = (): void => {
      queueMicrotask(() => {
        if (action === 'reopen') reopenLogs();
        handler?.(signal);
      });
    };
    process.on(signal, fn);
    installed.push([signal, fn]);
  }
  return () => {
    for (const [s, fn] of installed) process.off(s, fn);
  };
}

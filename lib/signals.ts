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
 * Handlers only enqueue; the component's main flow drains the queue in order and acts. The
 * reopen action is built in so no daemon can forget it.
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
 * Install the shared map. Work is deferred to a microtask-free `setImmediate` so the handler
 * itself stays trivial. Returns a function that removes the handlers.
 */
export function installSignals(handlers: SignalHandlers): () => void {
  const installed: [NodeJS.Signals, () => void][] = [];
  for (const { signal, action } of SIGNAL_TABLE) {
    const handler = handlers[action];
    if (action !== 'reopen' && !handler) continue;
    const fn = (): void => {
      setImmediate(() => {
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

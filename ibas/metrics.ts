/**
 * The ibas manager's Prometheus metrics (`GET /metrics` on ibas.conf `metrics.ip:port`; policy in
 * lib/metrics-server.ts). Everything is read at scrape time from shared memory the workers write —
 * the scoreboard (ibas/scoreboard.ts) and the per-app counters (ibas/app-stats.ts) — plus the
 * worker exits the manager's reaper counts here. Names (all prefixed `ibas_`):
 *
 *   transactions_total, errors_total          every transaction / failed one (live workers + exited)
 *   workers{state}                            workers by scoreboard state
 *   workers_spawned_total                     workers started since the scoreboard was created
 *   worker_abnormal_exits_total               exits by a signal or a non-zero code
 *   worker_exits_total{class}                 recycled | stopped | crashed | timeout_tier1..3 | sick | fatal | boot_error (ibas/exit-class.ts)
 *   generation, upgrades_total                serving manager generation; USR2 upgrades = generation − 1
 *   start_time_seconds                        the instance's start (the scoreboard's; a USR2 upgrade keeps it)
 *   manager_start_time_seconds                the serving manager process's start (new with each generation)
 *   app_transactions_total{app,rc}            per app and wire result code (rc "other" = codes past 7 per app)
 *   app_transaction_duration_seconds{app}     histogram of the server-side time (receive + app + send)
 *
 * Labels `server` (ip:port) is added by Prometheus's `instance`; none is added here.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { checkMetricsPolicy, histogramSamples, snapshotMetric, startMetricsServer, type MetricsServer } from '../lib/metrics-server.js';
import { AppStats, LATENCY_BUCKETS_US } from './app-stats.js';
import type { Instance } from './instance.js';
import { WORKER_STATES, type Scoreboard } from './scoreboard.js';
import { EXIT_CLASSES as EXIT_CLASS_TABLE, type ExitClass } from './exit-class.js';

/** This process's start (seconds since the epoch, ms precision): the same value at every scrape. */
const MANAGER_STARTED_S = Math.round(Date.now() - process.uptime() * 1000) / 1000;

/**
 * The `class` label of worker_exits_total: the manager's exit class (ibas/exit-class.ts), with a
 * timed-out worker split by the tier that ended it.
 */
export const EXIT_LABELS = [...Object.keys(EXIT_CLASS_TABLE).filter((c) => c !== 'timed_out'), 'timeout_tier1', 'timeout_tier2', 'timeout_tier3'] as const;

/** How a worker left (ibas_worker_exits_total{class}). */
export function exitLabel(cls: ExitClass, tier: 1 | 2 | 3 | undefined): string {
  return cls === 'timed_out' ? `timeout_tier${tier ?? 1}` : cls;
}

export class IbasMetrics {
  readonly registry = new Registry();
  readonly #exits: Counter<'class'>;
  #stats: AppStats | undefined;
  #server: MetricsServer | undefined;
  #closed = false;
  readonly #sb: () => Scoreboard;
  readonly #generation: () => number;

  constructor(sb: () => Scoreboard, generation: () => number) {
    this.#sb = sb;
    this.#generation = generation;
    const reg = this.registry;
    const totals = (): { tx: number; errors: number } => {
      const s = this.#sb();
      const h = s.header();
      let tx = h.retiredTx;
      let errors = h.retiredErrors;
      for (const v of s.all()) {
        if (v.pid <= 0) continue;
        tx += Math.max(v.count, 0);
        errors += Math.max(v.errors, 0);
      }
      return { tx, errors };
    };
    const one = (read: () => number) => () => [{ value: read() }];
    snapshotMetric(reg, 'ibas_transactions_total', 'Transactions answered by this server (live and exited workers).', 'counter', one(() => totals().tx));
    snapshotMetric(reg, 'ibas_errors_total', 'Failed transactions and malformed connections.', 'counter', one(() => totals().errors));
    snapshotMetric(reg, 'ibas_workers_spawned_total', 'Workers spawned since the server started.', 'counter', one(() => this.#sb().header().spawned));
    snapshotMetric(reg, 'ibas_worker_abnormal_exits_total', 'Workers that exited by a signal or a non-zero code.', 'counter', one(() => this.#sb().header().deaths));
    snapshotMetric(reg, 'ibas_upgrades_total', 'USR2 upgrades completed (the serving generation minus one).', 'counter', one(() => Math.max(this.#sb().header().generation, this.#generation()) - 1));
    const sbRef = this.#sb;
    new Gauge({
      name: 'ibas_workers', help: 'Workers by scoreboard state.', labelNames: ['state'], registers: [reg],
      collect() {
        const by = new Map<string, number>(WORKER_STATES.filter((s) => s !== 'DEAD').map((s) => [s, 0]));
        for (const v of sbRef().all()) if (v.state !== 'DEAD') by.set(v.state, (by.get(v.state) ?? 0) + 1);
        for (const [state, n] of by) this.set({ state }, n);
      },
    });
    new Gauge({ name: 'ibas_generation', help: 'Generation of the serving manager.', registers: [reg], collect() { this.set(sbRef().header().generation); } });
    // the instance (kept by a USR2 upgrade) and the manager process serving this scrape (a new one per generation)
    new Gauge({ name: 'ibas_start_time_seconds', help: 'When this ibas instance started: its scoreboard was created; a USR2 upgrade keeps it (seconds since the epoch).', registers: [reg], collect() { this.set(sbRef().header().startedAt / 1000); } });
    new Gauge({ name: 'ibas_manager_start_time_seconds', help: 'When the serving manager process started (a USR2 upgrade starts a new one; seconds since the epoch).', registers: [reg], collect() { this.set(MANAGER_STARTED_S); } });
    this.#exits = new Counter({ name: 'ibas_worker_exits_total', help: 'Worker exits by class.', labelNames: ['class'], registers: [reg] });
    for (const c of EXIT_LABELS) this.#exits.inc({ class: c }, 0);
    const hist = 'ibas_app_transaction_duration_seconds';
    snapshotMetric(reg, 'ibas_app_transactions_total', 'Transactions per app and wire result code (0 OK; "other" = codes past the 7 kept per app).', 'counter',
      () => (this.#stats?.read() ?? []).flatMap((a) => [...a.byRc].map(([rc, n]) => ({ value: n, labels: { app: a.app, rc: rc < 0 ? 'other' : String(rc) } }))));
    snapshotMetric(reg, hist, 'Server-side time of a transaction (receive + app + send), per app.', 'histogram',
      () => (this.#stats?.read() ?? []).flatMap((a) => histogramSamples(hist, LATENCY_BUCKETS_US.map((us) => us / 1e6), a.buckets, a.sumUs / 1e6, { app: a.app })));
  }

  /** Manager: a worker was reaped. */
  workerExit(cls: ExitClass, tier: 1 | 2 | 3 | undefined): void {
    this.#exits.inc({ class: exitLabel(cls, tier) });
  }

  /**
   * Manager start: open the per-app counters (created by the owner, attached by a USR2 new
   * generation so counters survive upgrades) and, when ibas.conf has a `metrics` section, listen.
   */
  async start(inst: Instance, owner: boolean, log: Logger): Promise<void> {
    try {
      this.#stats = owner ? AppStats.create(inst.appStatsKey) : AppStats.open(inst.appStatsKey);
    } catch (e) {
      log.warn(`app stats unavailable , reason[${errorText(e)}] , per-app metrics are off`);
    }
    const m = inst.conf.metrics;
    if (!m) return;
    checkMetricsPolicy(m, inst.confFile);
    if (owner) {
      this.#server = await startMetricsServer(m, this.registry, log, 'ibas');
      return;
    }
    // a USR2 new generation: the previous one holds the address until it has drained and exits;
    // take it over then (retry every 500 ms, unref'd: never keeps the manager alive)
    const retry = (): void => {
      if (this.#closed) return;
      startMetricsServer(m, this.registry, log, 'ibas').then(
        (srv) => {
          if (this.#closed) void srv.close();
          else this.#server = srv;
        },
        () => setTimeout(retry, 500).unref(),
      );
    };
    retry();
  }

  /** Manager stop: close the endpoint; the owner removes the app-stats segment. */
  close(destroy: boolean): void {
    this.#closed = true;
    void this.#server?.close();
    this.#server = undefined;
    try {
      if (destroy) this.#stats?.destroy();
      else this.#stats?.detach();
    } catch {
      // gone already
    }
    this.#stats = undefined;
  }
}

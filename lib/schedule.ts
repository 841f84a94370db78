/**
 * Scheduled jobs of a daemon, on node-cron: each job has a name, a cron expression (validated when
 * the conf is loaded, lib/config/cron.ts) and an async body. A job whose previous run is still
 * going is skipped with a log line (never two runs of one job at once); a run that fails is logged
 * at error (event log) and the schedule goes on. Every run is logged with its duration.
 *
 *   schedule run , job[save_config] ms[12]
 *   schedule skipped , job[tx:nightly] , the previous run is still going (since 2026-…)
 */
import { createRequire } from 'node:module';
import type { ScheduledTask, TaskFn, TaskOptions } from 'node-cron';

/** node-cron's createTask, loaded when the first job is scheduled (every tool imports this file; few schedule). */
function createTask(expr: string, fn: TaskFn, opts: TaskOptions): ScheduledTask {
  const cron = createRequire(import.meta.url)('node-cron') as { createTask: (e: string, f: TaskFn, o: TaskOptions) => ScheduledTask };
  return cron.createTask(expr, fn, opts);
}
import { errorText } from './errors.js';
import type { Logger } from './log.js';

export interface JobStats {
  name: string;
  cron: string;
  runs: number;
  failures: number;
  skipped: number;
  running: boolean;
  lastRunAt?: number;
  lastError?: string;
}

interface Job extends JobStats {
  task: ScheduledTask;
  since?: number;
}

export class Scheduler {
  readonly #log: Logger;
  readonly #jobs = new Map<string, Job>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Schedule `body` at `cron` (started at once; timers are unref'd: a job never keeps a process alive). */
  add(name: string, cron: string, body: () => Promise<unknown>): void {
    if (this.#jobs.has(name)) throw new Error(`job ${name} is scheduled twice`);
    const job = { name, cron, runs: 0, failures: 0, skipped: 0, running: false } as Job;
    job.task = createTask(cron, () => this.run(name, body), { name, unref: true, suppressMissedWarning: true });
    this.#jobs.set(name, job);
    void job.task.start();
    this.#log.info(`schedule added , job[${name}] cron[${cron}]`);
  }

  /** Run a job now (what the timer does); resolves when it finished or was skipped. */
  async run(name: string, body: () => Promise<unknown>): Promise<void> {
    const job = this.#jobs.get(name);
    if (!job) return;
    if (job.running) {
      job.skipped++;
      this.#log.info(`schedule skipped , job[${name}] , the previous run is still going (since ${new Date(job.since!).toISOString()})`);
      return;
    }
    job.running = true;
    job.since = Date.now();
    job.lastRunAt = job.since;
    try {
      await body();
      job.runs++;
      delete job.lastError;
      this.#log.info(`schedule run , job[${name}] ms[${Date.now() - job.since}]`);
    } catch (e) {
      job.runs++;
      job.failures++;
      job.lastError = errorText(e);
      this.#log.error(`schedule run failed , job[${name}] reason[${errorText(e)}]`);
    } finally {
      job.running = false;
    }
  }

  stats(): JobStats[] {
    return [...this.#jobs.values()].map(({ task: _task, since: _since, ...s }) => ({ ...s }));
  }

  /** Stop every timer (a running job finishes on its own). */
  stop(): void {
    for (const j of this.#jobs.values()) void j.task.destroy();
    this.#jobs.clear();
  }
}

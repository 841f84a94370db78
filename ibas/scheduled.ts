/**
 * Scheduled transactions of an ibas (ibas.conf `schedule`: `[{name, cron, app, request, journal?,
 * timeout?}]`). The manager runs each at its cron expression through the normal client path: a
 * connection to its own listen address, PRE_REQUEST + REQUEST, the answer read back. So a worker
 * of the pool serves it like any transaction — same accept lock, same timeouts, one transaction
 * log line (client node `ibas-schedule`, journal `sched:<name>:<UTC time of the run>` unless
 * given, e.g. sched:nightly:20261130T020000.004Z) and the same
 * counters — and the manager logs the outcome:
 *
 *   scheduled transaction , job[nightly] app[A] rc[0 OK] app_rc[0] ms[3]
 *
 * A run still going when the next is due is skipped with a log line (lib/schedule.ts); a failure
 * is logged at warn (event log) and the schedule goes on.
 */
import { Channel } from '../ibac/channel.js';
import type { IbasConf } from '../lib/config/ibas-conf.js';
import { IbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { encodePackets, type Packet } from '../lib/protocol/codec.js';
import { resultName } from '../lib/protocol/result-codes.js';
import { Scheduler } from '../lib/schedule.js';

export const SCHEDULE_CLIENT = 'ibas-schedule';
type Job = NonNullable<IbasConf['schedule']>[number];

export interface ScheduledResult { rc: number; appRc: number; message: string; body: Buffer }

/** One transaction against `ip:port`, as a client does it. */
export async function callOnce(ip: string, port: number, job: Job, journal: string): Promise<ScheduledResult> {
  const timeoutMs = Math.round((job.timeout ?? 60) * 1000);
  const ch = await Channel.open(ip, port, Math.min(timeoutMs, 10_000));
  try {
    ch.busy(true);
    ch.arm(timeoutMs, `answer to scheduled transaction ${job.name}`);
    const packets: Packet[] = [
      { type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs, clientNode: SCHEDULE_CLIENT, app: job.app, journal },
      { type: 'REQUEST', body: Buffer.from(job.request ?? '', 'utf8') },
    ];
    await ch.write(encodePackets(packets));
    for (;;) {
      const p = await ch.next().catch((b: { detail: string }) => {
        throw new IbpError('IBP_ERR_POOL_INTERNAL', { detail: `scheduled transaction ${job.name}: ${b.detail}` });
      });
      if (p.type === 'PRE_ANSWER') {
        if (p.rc !== 0) return { rc: p.rc, appRc: 0, message: p.message, body: Buffer.alloc(0) };
        continue;
      }
      if (p.type === 'RESPONSE') return { rc: p.rc, appRc: p.appRc, message: p.message, body: p.body };
      if (p.type === 'ERROR') return { rc: p.rc, appRc: 0, message: p.message, body: Buffer.alloc(0) };
      // PULL_FILE: a scheduled transaction takes no files back; the worker still answers RESPONSE
    }
  } finally {
    ch.disarm();
    ch.close();
  }
}

/** 2026-11-30T14:23:01.123Z → 20261130T142301.123Z (a run's journal suffix). */
export function runStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '');
}

/** Start the conf's scheduled transactions; the caller stops the scheduler at stop. */
export function startScheduledTransactions(conf: IbasConf, log: Logger): Scheduler | undefined {
  const jobs = conf.schedule ?? [];
  if (jobs.length === 0) return undefined;
  const s = new Scheduler(log);
  const { ip, port } = conf.server;
  for (const job of jobs) {
    s.add(`tx:${job.name}`, job.cron, async () => {
      // the run's own time: unique across restarts and USR2 generations (a counter started over)
      const journal = job.journal ?? `sched:${job.name}:${runStamp(new Date())}`;
      const t0 = Date.now();
      const r = await callOnce(ip, port, job, journal);
      const line = `scheduled transaction , job[${job.name}] app[${job.app}] journal[${journal}] rc[${r.rc} ${resultName(r.rc)}] app_rc[${r.appRc}] ms[${Date.now() - t0}]`;
      const fields = { job: job.name, app: job.app, journal, rc: r.rc, app_rc: r.appRc };
      if (r.rc === 0) log.info(fields, line);
      else log.warn({ ...fields, reason: r.message }, `${line} reason[${r.message}]`);
    });
  }
  return s;
}

/**
 * The registry's scheduled jobs (ibms.conf `schedule`, cron expressions; lib/schedule.ts):
 *
 *   save_config          the three files, their .bin images and the second copy (as `-a save_config`)
 *   build_config         the .bin images (as `-a build_config`)
 *   second_config_dump   only the second copy, into misc.second_config_dump
 *   reap_sessions        drop sessions past session.expire_seconds (logged like the 1 s check)
 */
import type { Logger } from '../lib/log.js';
import { Scheduler } from '../lib/schedule.js';
import type { Registry } from './registry.js';

export const IBMS_JOBS = ['save_config', 'build_config', 'second_config_dump', 'reap_sessions'] as const;

export function registrySchedules(reg: Registry, log: Logger): Scheduler {
  const s = new Scheduler(log);
  const conf = reg.conf.schedule ?? {};
  const bodies: Record<(typeof IBMS_JOBS)[number], () => Promise<unknown>> = {
    save_config: () => reg.save(),
    build_config: () => reg.build(),
    second_config_dump: () => reg.dumpSecond(),
    reap_sessions: async () => {
      for (const x of reg.sessions.expire()) log.info(`session expired , ${x.role} node[${x.node}] ip[${x.ip}] port[${x.port}] pid[${x.pid}]`);
    },
  };
  for (const job of IBMS_JOBS) {
    const cron = conf[job];
    if (cron) s.add(job, cron, bodies[job]);
  }
  return s;
}

/**
 * One ibas instance as every part of it sees it: the validated ibas.conf, its home, and what is
 * derived from them (pid file, log files, SysV keys, wire limits, timings). The CLI and the manager
 * read and validate ibas.conf (ibas/load-instance.ts); a worker builds the same Instance from the
 * conf its manager validated, handed over in its environment (ibas/handover.ts), so no worker
 * loads the schema validator (ajv, TypeBox: 5–8 MB of RSS each).
 *
 * Files of an instance (IBP's names; `<ip>-<port>` from server.ip/port):
 *
 *   run/ibas.pid                              the manager's pid
 *   log/ibas_<ip>-<port>_monitor.log          the manager (IBP: monitor)
 *   log/ibas_<ip>-<port>_worker_<n>.log       worker n (its scoreboard slot); also its stderr
 *   log/event.log                             warn and above of every process of the home
 *   file/ibas_w<n>/                           attached files of worker n's running transaction
 */
import path from 'node:path';
import type { IbasConf } from '../lib/config/ibas-conf.js';
import { commOf, monitorOf, type CommSettings, type MonitorSettings } from '../lib/config/ibas-settings.js';
import { Home, homeOfConf } from '../lib/home.js';
import { homeKeyBase, KEY_SLOT } from '../lib/shm/keys.js';
import { limitsOf, type FrameLimits } from '../lib/protocol/frame.js';
import type { SbMode } from './scoreboard.js';

export interface Instance {
  confFile: string;
  conf: IbasConf;
  home: Home;
  /** `ibas_<ip>-<port>` */
  tag: string;
  pidFile: string;
  monitorLog: string;
  mainLog: string;
  eventLog: string;
  workerLog(n: number): string;
  /** The folder of worker n's attached files. */
  fileDir(n: number): string;
  ibmaConfFile: string;
  scoreboardKey: number;
  acceptLockKey: number;
  /** Per-app transaction counters (ibas/app-stats.ts). */
  appStatsKey: number;
  /** The replay cache of signed hellos shared by the workers (ibas/replay-cache.ts). */
  replayCacheKey: number;
  comm: CommSettings;
  monitor: MonitorSettings;
  limits: FrameLimits;
}

export function defaultLogNames(ip: string, port: number): { main: string; monitor: string; worker: string; event: string } {
  const tag = `ibas_${ip}-${port}`;
  return { main: `log/${tag}_main.log`, monitor: `log/${tag}_monitor.log`, worker: `log/${tag}_worker_{n}.log`, event: 'log/event.log' };
}

/** The Instance of an already validated conf (`confFile` absolute). */
export function instanceOf(confFile: string, conf: IbasConf): Instance {
  const home = homeOfConf(confFile);
  const names = defaultLogNames(conf.server.ip, conf.server.port);
  const base = homeKeyBase(home.root);
  const comm = commOf(conf);
  const workerPattern = home.resolve(conf.log.worker ?? names.worker);
  return {
    confFile,
    conf,
    home,
    tag: `ibas_${conf.server.ip}-${conf.server.port}`,
    pidFile: home.run('ibas.pid'),
    monitorLog: home.resolve(conf.log.monitor ?? names.monitor),
    mainLog: home.resolve(conf.log.main ?? names.main),
    eventLog: home.resolve(conf.log.event ?? names.event),
    workerLog: (n) => workerPattern.replace(/\{n\}|%d/g, String(n)),
    fileDir: (n) => home.file(`ibas_w${n}`),
    ibmaConfFile: home.confPath(conf.ibma.config_filename),
    scoreboardKey: base + KEY_SLOT.SCOREBOARD,
    acceptLockKey: base + KEY_SLOT.ACCEPT_LOCK,
    appStatsKey: base + KEY_SLOT.APP_STATS,
    replayCacheKey: base + KEY_SLOT.REPLAY_CACHE,
    comm,
    monitor: monitorOf(conf),
    limits: limitsOf({ maxFrame: comm.maxFrame, maxFile: comm.maxFile, maxFiles: comm.maxFiles }),
  };
}

export function sbModeOf(conf: IbasConf, foreground: boolean): SbMode {
  return foreground ? 'FOREGROUND' : conf.mpm.mode;
}

/** Scoreboard capacity: room for two generations of max_count workers (USR2, issue 5). */
export function slotCapacity(conf: IbasConf, foreground: boolean): number {
  return foreground ? 1 : Math.max(2, conf.mpm.max_count * 2);
}

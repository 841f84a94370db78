/**
 * ibas, the transaction server (IBP's 通讯服务端平台).
 *
 *   ibas -a init --ip IP --port P [--mode M] [--max-count N] [--min-idle N] [--max-idle N] [--max-process-count N]
 *   ibas [-f ibas.conf] -a start [--foreground] | stop | kill | check
 *   ibas [-f ibas.conf] -a resume_app --app A      (end an app's crash-loop suspension)
 *   ibas [-f ibas.conf] -s status | bbstat | bbdetail [--json]
 *   ibas [-f ibas.conf] -s in_doubt [--json]        (two-phase transactions in doubt here; audited)
 *   ibas [-f ibas.conf] -a commit_tx | abort_tx --gtrid X   (decide one by hand; audited)
 *   kill -USR1 <pid>: reopen logs     kill -TERM <pid>: graceful stop
 */
import fs from 'node:fs';
import path from 'node:path';
import { Option } from 'commander';
import { badArg, createProgram, failCli, intArg, neededBy, runCli } from '../lib/cli.js';
import { isDaemonChild, killDaemon, reportFailed, reportReady, startDaemon, stopDaemon } from '../lib/daemon.js';
import { errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import { Home } from '../lib/home.js';
import { createLogger, type LogLevel, type Logger } from '../lib/log.js';
import { runningPid } from '../lib/pidfile.js';
import { logFilesIn, showLogs } from '../lib/log-tail.js';
import type { MpmMode } from '../lib/config/ibas-conf.js';
import type { Instance } from '../ibas/instance.js';
import { loadInstance } from '../ibas/load-instance.js';
import { initConf } from '../ibas/init.js';
import { Manager } from '../ibas/manager.js';
import { runForeground } from '../ibas/foreground.js';
import type { SingleApp } from '../ibas/app-resolver.js';
import { show, SHOWS, type Show } from '../ibas/show.js';
import { preflight } from '../ibas/preflight.js';
import { resolveInDoubt, showInDoubt } from '../ibas/in-doubt-admin.js';
import { takeUpgradeEnv } from '../ibas/handover.js';
import { Scoreboard } from '../ibas/scoreboard.js';
import { IbpError } from '../lib/errors.js';

const ACTIONS = ['init', 'start', 'stop', 'kill', 'check', 'resume_app', 'commit_tx', 'abort_tx'] as const;
type Action = (typeof ACTIONS)[number];
const MODES = ['FORK', 'STATIC_WORKERPOOL', 'DYNAMIC_WORKERPOOL'] as const;

interface Opts {
  conf: string;
  action?: Action;
  show?: Show | 'logs' | 'in_doubt';
  gtrid?: string;
  follow?: boolean;
  lines?: string;
  ip?: string;
  port?: string;
  mode?: MpmMode;
  maxCount?: string;
  minIdle?: string;
  maxIdle?: string;
  maxProcessCount?: string;
  workers?: string;
  force?: boolean;
  json?: boolean;
  foreground?: boolean;
  app?: string;
  appCode?: string;
}

const program = createProgram('ibas', 'IBP-TS transaction server: a manager and a pre-forked worker pool running app .so packages')
  .option('-f, --conf <file>', 'config file (a name without a path means $IBP_HOME/etc/NAME)', 'ibas.conf')
  .addOption(new Option('-a, --action <action>', 'what to do').choices(ACTIONS))
  .addOption(new Option('-s, --show <what>', 'what to show: the scoreboard, or the logs (pretty-printed)').choices([...SHOWS, 'logs', 'in_doubt']))
  .option('--gtrid <gtrid>', 'commit_tx / abort_tx: the global transaction in doubt (`-s in_doubt` lists them)')
  .option('--follow', 'logs: keep printing new lines (tail -F)')
  .option('--lines <n>', 'logs: how many lines to print first', '50')
  .option('--ip <ip>', 'init: the listen IP')
  .option('--port <port>', 'init: the listen port')
  .addOption(new Option('--mode <mode>', 'init: mpm mode').choices(MODES))
  .option('--max-count <n>', 'init: workers (static), upper bound (dynamic), concurrent workers (FORK); default one per CPU')
  .option('--workers <n>', 'init: the same as --max-count')
  .option('--force', 'init: rewrite an existing ibas.conf (the old one is kept as ibas.conf.bak)')
  .option('--min-idle <n>', 'init: DYNAMIC_WORKERPOOL.min_idle_count')
  .option('--max-idle <n>', 'init: DYNAMIC_WORKERPOOL.max_idle_count')
  .option('--max-process-count <n>', 'init: transactions before a worker is recycled (0 = never)')
  .option('--json', 'output JSON (for scripts)')
  .option('--foreground', 'start: one process, one worker, logs on stderr too (for a debugger)')
  .option('--app <app>', 'resume_app: the suspended app (code); start --foreground: serve this one app file (.so or .mjs) for any app code, without a config space')
  .option('--app-code <code>', 'start --foreground --app: serve it only under this app code')
  .addHelpText('after', '\nSignals: TERM graceful stop, USR1 reopen logs, USR2 graceful upgrade (new generation from the code on disk; pid file kept as <pid file>.oldbin meanwhile).')
  .action(async (opts: Opts) => {
    if (!opts.action && !opts.show) throw badArg('-a/-s', 'give an action (-a) or a show (-s)');
    if (opts.action && opts.show) throw badArg('-a/-s', 'give either an action or a show, not both');
    const home0 = new Home();
    const confFile = home0.confPath(opts.conf);
    if (opts.action === 'init') {
      for (const line of init(home0, confFile, opts)) process.stdout.write(`${line}\n`);
      return;
    }
    const inst = loadInstance(confFile);
    if (opts.show === 'logs') {
      process.exitCode = await showLogs(logFilesOf(inst), opts);
      return;
    }
    if (opts.show === 'in_doubt') {
      showInDoubt(inst, opts.json ?? false);
      return;
    }
    if (opts.show) {
      process.exitCode = await show(opts.show, inst, opts.json ?? false);
      return;
    }
    switch (opts.action!) {
      case 'start':
        if (opts.app !== undefined && !opts.foreground) throw badArg('--app', 'serves one app file only with --foreground');
        if (opts.foreground) {
          if (opts.app === undefined) preflight(inst);
          await foreground(inst, opts.app === undefined ? undefined : { file: opts.app, app: opts.appCode });
        } else if (isDaemonChild()) await runManager(inst);
        else {
          // refuse what `-a check` refuses, with the same message, before anything is spawned
          preflight(inst);
          // the home in the environment of every ibas process (process titles replace the command line)
          const pid = await startDaemon({ tool: 'ibas', pidFile: inst.pidFile, logFile: inst.monitorLog, env: { ...process.env, IBP_HOME: inst.home.root } });
          // what started, like pm2 start; the result line comes last (cluster scripts report the last line)
          if (!opts.json) await show('status', inst, false);
          process.stdout.write(`ibas start ok , pid[${pid}] listen[${inst.conf.server.ip}:${inst.conf.server.port}] mode[${inst.conf.mpm.mode}]\n`);
        }
        return;
      case 'stop': {
        // during a USR2 upgrade that has not handed over yet, the serving manager is in `.oldbin`
        const oldbin = `${inst.pidFile}.oldbin`;
        const pidFile = runningPid(inst.pidFile) === undefined && runningPid(oldbin) !== undefined ? oldbin : inst.pidFile;
        const pid = await stopDaemon('ibas', pidFile, { timeoutMs: inst.monitor.stopTimeoutMs + 10_000 });
        // only the result line: a status after the stop would just say "not running" (like ibms/ibma)
        process.stdout.write(`ibas stop ok , pid[${pid}]\n`);
        return;
      }
      case 'kill': {
        const pid = await killDaemon('ibas', inst.pidFile);
        process.stdout.write(`ibas killed , pid[${pid}] (workers, scoreboard and lock may be left: run \`ibas -a start\` to clean up and restart)\n`);
        return;
      }
      case 'check':
        for (const line of preflight(inst)) process.stdout.write(`${line}\n`);
        return;
      case 'resume_app':
        resumeApp(inst, opts.app);
        return;
      case 'commit_tx':
      case 'abort_tx': {
        const r = await resolveInDoubt(inst, opts.action === 'commit_tx', opts.gtrid);
        if (r.branches.length <= 1) process.stdout.write(`ibas ${opts.action} ok , gtrid[${opts.gtrid}] app_rc[${r.appRc}] body[${r.body.toString('utf8')}]\n`);
        // several branches (legs) of the gtrid on this server: each one's outcome
        for (const b of r.branches.length > 1 ? r.branches : []) {
          process.stdout.write(`ibas ${opts.action} ok , gtrid[${opts.gtrid}] journal[${b.journal}] app[${b.app}] state[${b.state.toLowerCase()}] app_rc[${b.appRc ?? '?'}] body[${b.body.toString('utf8')}]\n`);
        }
        return;
      }
    }
  });

/** The monitor's, the workers' and the home's event log of this instance (`-s logs`). */
function logFilesOf(inst: Instance): () => string[] {
  const dir = path.dirname(inst.monitorLog);
  return () => [...new Set([inst.monitorLog, inst.eventLog, ...logFilesIn(dir, (f) => f.startsWith(`${inst.tag}_`))])].filter((f) => fs.existsSync(f));
}

function init(home: Home, confFile: string, o: Opts): string[] {
  const need = (v: string | undefined, name: string): string => neededBy('-a init', name, v);
  const int = (v: string | undefined, name: string, min: number, max: number) => (v === undefined ? undefined : intArg(name, v, min, max));
  return initConf(home, confFile, {
    ip: need(o.ip, '--ip'),
    port: intArg('--port', need(o.port, '--port'), 1, 65535),
    mode: o.mode,
    maxCount: o.workers !== undefined && o.maxCount !== undefined ? (() => { throw badArg('--workers', 'give --workers or --max-count, not both'); })() : int(o.workers ?? o.maxCount, o.workers !== undefined ? '--workers' : '--max-count', 1, 1024),
    minIdle: int(o.minIdle, '--min-idle', 0, 1024),
    maxIdle: int(o.maxIdle, '--max-idle', 1, 1024),
    maxProcessCount: int(o.maxProcessCount, '--max-process-count', 0, 0x7fffffff),
    force: o.force === true,
  });
}

/**
 * `-a resume_app --app A`: end A's crash-loop suspension (ibas/suspensions.ts). The CLI removes
 * the entry from the scoreboard itself (compare-and-swap, no signal); the manager notices on its
 * next scan and logs it.
 */
function resumeApp(inst: Instance, app: string | undefined): void {
  if (!app) throw badArg('--app', 'is required by -a resume_app');
  const pid = runningPid(inst.pidFile) ?? runningPid(`${inst.pidFile}.oldbin`);
  const sb = pid !== undefined ? Scoreboard.attach(inst.scoreboardKey) : undefined;
  if (pid === undefined || !sb) throw new IbpError('IBP_ERR_DAEMON_NOT_RUNNING', { tool: 'ibas', pidfile: inst.pidFile });
  try {
    if (!sb.resume(app)) throw badArg('--app', `app ${app} is not suspended on this server (\`ibas -s status\` lists the suspended apps)`);
  } finally {
    sb.detach();
  }
  process.stdout.write(`ibas resume_app ok , app[${app}] (calls run it again)\n`);
}

function monitorLogger(inst: Instance, toStderr = false): Logger {
  return createLogger({
    name: 'ibas',
    level: (inst.conf.log.level ?? 'info') as LogLevel,
    file: toStderr ? '-' : inst.monitorLog,
    eventFile: inst.eventLog,
    base: { role: toStderr ? 'foreground' : 'monitor' },
    rotate: toStderr ? undefined : inst.conf.log.rotate,
  });
}

/** The daemon itself: the detached child of `-a start`. */
async function runManager(inst: Instance): Promise<void> {
  const log = monitorLogger(inst);
  const other = runningPid(inst.pidFile);
  if (other !== undefined && other !== process.pid) {
    reportFailed(`already running with pid ${other}`);
    process.exitCode = EXIT.FAILURE;
    return;
  }
  // a USR2 new generation (ibas/upgrade.ts): the listen fd, generation and old manager
  let handover;
  try {
    handover = takeUpgradeEnv();
  } catch (e) {
    reportFailed(errorText(e));
    process.exitCode = EXIT.INIT;
    return;
  }
  const manager = new Manager({
    inst, log,
    ...(handover ? { upgradeFrom: handover.from, listenFd: handover.listenFd, generation: handover.generation } : {}),
  });
  process.on('uncaughtException', (e) => {
    log.fatal({ err: errorText(e), stack: e.stack }, `manager crashed , reason[${errorText(e)}]`);
    manager.abort();
    process.exit(EXIT.FAILURE);
  });
  const finished = manager.finished();
  try {
    await manager.start();
  } catch (e) {
    log.error({ err: errorText(e) }, `ibas start failed , reason[${errorText(e)}]`);
    reportFailed(errorText(e));
    manager.abort();
    process.exit(EXIT.INIT);
  }
  reportReady();
  process.exit(await finished);
}

async function foreground(inst: Instance, single?: SingleApp): Promise<void> {
  const other = runningPid(inst.pidFile);
  if (other !== undefined && other !== process.pid) throw badArg('-a start', `ibas is already running with pid ${other}`);
  const log = monitorLogger(inst, true);
  const code = await runForeground(inst, log, single, () => {
    reportReady();
    process.stderr.write(`ibas foreground ok , pid[${process.pid}] listen[${inst.conf.server.ip}:${inst.conf.server.port}] (Ctrl-C stops)\n`);
  });
  process.exit(code);
}

runCli(program).catch((e) => failCli('ibas', e));

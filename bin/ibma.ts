/**
 * ibma, the node agent (IBP's 注册代理).
 *
 *   ibma -a init --node N --ibms-ip IP --ibms-port P --credential C [--index-key K]
 *   ibma [-f ibma.conf] -a start | start_cleanly | stop | stop_cleanly | kill | check
 *   ibma [-f ibma.conf] -s this_node | nodes | apps | nodes_kv | status [--json]
 *   kill -USR1 <pid>: reopen logs    kill -USR2 <pid>: stop with removing the config space
 */
import fs from 'node:fs';
import { Option } from 'commander';
import { badArg, createProgram, failCli, intArg, neededBy, runCli } from '../lib/cli.js';
import { isDaemonChild, killDaemon, reportFailed, reportReady, startDaemon, stopDaemon } from '../lib/daemon.js';
import { errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import { Home, homeOfConf } from '../lib/home.js';
import { createLogger, type Logger, type LogLevel } from '../lib/log.js';
import { removePid, runningPid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import { loadConfigFile } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import { Agent, type StopMode } from '../ibma/agent.js';
import { startAgentMetrics } from '../ibma/metrics.js';
import { checkMetricsPolicy } from '../lib/metrics-server.js';
import { showLogs } from '../lib/log-tail.js';
import { cacheFile, loadCache } from '../ibma/cache.js';
import { initHome } from '../ibma/init.js';
import { show, SHOWS, type Show } from '../ibma/show.js';
import { removeSpace } from '../ibma/cleanup.js';

const ACTIONS = ['init', 'start', 'start_cleanly', 'stop', 'stop_cleanly', 'kill', 'check'] as const;
type Action = (typeof ACTIONS)[number];

interface Opts {
  conf: string;
  action?: Action;
  show?: Show | 'logs';
  follow?: boolean;
  lines?: string;
  node?: string;
  ibmsIp?: string;
  ibmsPort?: string;
  credential?: string;
  indexKey?: string;
  json?: boolean;
  foreground?: boolean;
}

const program = createProgram('ibma', 'IBP-TS node agent: pulls this node\'s config from ibms into shared memory, installs app packages')
  .option('-f, --conf <file>', 'config file (a name without a path means $IBP_HOME/etc/NAME)', 'ibma.conf')
  .addOption(new Option('-a, --action <action>', 'what to do').choices(ACTIONS))
  .addOption(new Option('-s, --show <what>', 'what to show from the local config space, or the logs (pretty-printed)').choices([...SHOWS, 'logs']))
  .option('--follow', 'logs: keep printing new lines (tail -F)')
  .option('--lines <n>', 'logs: how many lines to print first', '50')
  .option('--node <node>', 'init: this node\'s name in the registry')
  .option('--ibms-ip <ip>', 'init: the registry\'s IP')
  .option('--ibms-port <port>', 'init: the registry\'s port')
  .option('--credential <credential>', 'init: the node credential (`ibms -s node_credential --node N`)')
  .option('--index-key <key>', 'init: SysV key of the index segment (default: from the home\'s key block)')
  .option('--json', 'output JSON (for scripts)')
  .option('--foreground', 'start: run in the foreground instead of as a daemon')
  .addHelpText('after', '\nSignals: TERM stop (segments stay), USR1 reopen logs, USR2 stop and remove the config space.')
  .action(async (opts: Opts) => {
    if (!opts.action && !opts.show) throw badArg('-a/-s', 'give an action (-a) or a show (-s)');
    if (opts.action && opts.show) throw badArg('-a/-s', 'give either an action or a show, not both');
    const home0 = new Home();
    const confFile = home0.confPath(opts.conf);
    if (opts.action === 'init') {
      for (const line of init(home0, confFile, opts)) process.stdout.write(`${line}\n`);
      return;
    }
    const conf = loadConfigFile(IbmaConf, confFile, 'ibma');
    const home = homeOfConf(confFile);
    const pidFile = home.run('ibma.pid');
    if (opts.show === 'logs') {
      const own = logFileOf(conf, home);
      const event = home.resolve(conf.log.event ?? 'log/event.log');
      process.exitCode = await showLogs(() => [own, event].filter((f) => fs.existsSync(f)), opts);
      return;
    }
    if (opts.show) {
      process.exitCode = show(opts.show, { confFile, conf, home, pidFile, json: opts.json ?? false });
      return;
    }
    switch (opts.action!) {
      case 'start':
      case 'start_cleanly':
        if (isDaemonChild() || opts.foreground) await runAgent(conf, confFile, home, pidFile, opts.action === 'start_cleanly');
        else {
          const pid = await startDaemon({ tool: 'ibma', pidFile, logFile: logFileOf(conf, home) });
          process.stdout.write(`ibma start ok , pid[${pid}]\n`);
        }
        return;
      case 'stop': {
        const pid = await stopDaemon('ibma', pidFile);
        process.stdout.write(`ibma stop ok , pid[${pid}] , config space kept\n`);
        return;
      }
      case 'stop_cleanly': {
        if (runningPid(pidFile) !== undefined) {
          const pid = await stopDaemon('ibma', pidFile, { signal: 'SIGUSR2' });
          process.stdout.write(`ibma stop_cleanly ok , pid[${pid}] , config space removed\n`);
        } else {
          const removed = removeSpace(conf.shm.index_key);
          process.stdout.write(`ibma was not running , leftover segments removed[${removed.length}]\n`);
        }
        return;
      }
      case 'kill': {
        const pid = await killDaemon('ibma', pidFile);
        process.stdout.write(`ibma killed , pid[${pid}] , config space kept\n`);
        return;
      }
      case 'check': {
        checkMetricsPolicy(conf.metrics, confFile);
        process.stdout.write(`${confFile}: ok (node ${conf.this_node}, ibms ${conf.ibms.ip}:${conf.ibms.port}, index_key 0x${conf.shm.index_key.toString(16)})\n`);
        const cf = cacheFile(home, conf.this_node);
        const cached = loadCache(cf, conf.this_node);
        process.stdout.write(cached.ok ? `${cf}: ok (version ${cached.cached.bundle.version}, epoch ${cached.cached.bundle.epoch})\n` : `cache: none usable (${cached.reason})\n`);
        return;
      }
    }
  });

function init(home: Home, confFile: string, o: Opts): string[] {
  const need = (v: string | undefined, name: string): string => neededBy('-a init', name, v);
  return initHome(home, confFile, {
    node: need(o.node, '--node'),
    ibmsIp: need(o.ibmsIp, '--ibms-ip'),
    ibmsPort: intArg('--ibms-port', need(o.ibmsPort, '--ibms-port'), 1, 65535),
    credential: need(o.credential, '--credential'),
    ...(o.indexKey !== undefined ? { indexKey: intArg('--index-key', o.indexKey, 1, 0x7fffff00) } : {}),
  });
}

function logFileOf(conf: IbmaConf, home: Home): string {
  return home.resolve(conf.log.main ?? `log/ibma_${conf.this_node}_main.log`);
}

/** The daemon itself (the detached child of `-a start`, or `--foreground`). */
async function runAgent(conf: IbmaConf, confFile: string, home: Home, pidFile: string, cleanly: boolean): Promise<void> {
  const log: Logger = createLogger({
    name: 'ibma',
    level: (conf.log.level ?? 'info') as LogLevel,
    file: logFileOf(conf, home),
    eventFile: home.resolve(conf.log.event ?? 'log/event.log'),
    base: { node: conf.this_node },
    rotate: conf.log.rotate,
  });
  const other = runningPid(pidFile);
  if (other !== undefined && other !== process.pid) {
    reportFailed(`already running with pid ${other}`);
    process.exitCode = EXIT.FAILURE;
    return;
  }
  writePid(pidFile);
  const agent = new Agent({ conf, home, log, cleanly });
  const shutdown = (mode: StopMode, why: string): void => {
    log.info({ why }, `signal received , ${why}`);
    void agent.stop(mode).finally(() => {
      removePid(pidFile);
      process.exit(EXIT.OK);
    });
  };
  installSignals({
    stop: (s) => shutdown('keep-segments', `${s}: stop, the config space stays`),
    special: (s) => shutdown('remove-segments', `${s}: stop cleanly, removing the config space`),
    reload: (s) => log.info({}, `${s}: ibma has nothing to reload (restart it to read ibma.conf again)`),
  });
  process.on('uncaughtException', (e) => {
    log.fatal({ err: errorText(e), stack: (e as Error).stack }, `ibma crashed , reason[${errorText(e)}] , the config space stays`);
    removePid(pidFile);
    process.exit(EXIT.FAILURE);
  });
  try {
    await agent.start();
  } catch (e) {
    log.error({ err: errorText(e) }, `ibma start failed , reason[${errorText(e)}]`);
    // an index this start created and never published into is removed; a space clients use stays
    const mode: StopMode = agent.writer && !agent.writer.current() ? 'remove-segments' : 'keep-segments';
    await agent.stop(mode).catch(() => undefined);
    removePid(pidFile);
    reportFailed(errorText(e));
    process.exit(EXIT.INIT);
  }
  try {
    await startAgentMetrics(agent, confFile, log);
  } catch (e) {
    log.error({ err: errorText(e) }, `ibma start failed , reason[${errorText(e)}]`);
    await agent.stop('keep-segments').catch(() => undefined);
    removePid(pidFile);
    reportFailed(errorText(e));
    process.exit(EXIT.INIT);
  }
  log.info(`ibma started , pid[${process.pid}]`);
  reportReady();
}

runCli(program).catch((e) => failCli('ibma', e));

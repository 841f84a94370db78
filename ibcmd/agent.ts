/**
 * The ibcmd agent process: load the config, read the credential, open the sandbox, serve the API,
 * write the pid file, report ready; on SIGTERM kill the commands still running, close the server,
 * remove the pid file and exit. SIGUSR1 reopens the logs (lib/signals.ts).
 */
import { createLogger, type LogLevel } from '../lib/log.js';
import { IbpError, errorText } from '../lib/errors.js';
import { removePid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import { reportFailed, reportReady } from '../lib/daemon.js';
import { compilePolicy } from './audit.js';
import { DEFAULT_CALLER, PID_NAME, type LoadedConf } from './config.js';
import { ProgramResolver, commandPath } from './resolve.js';
import { readCredential } from './credential.js';
import { Runner } from './exec.js';
import { buildServer, currentUser, type AgentState } from './server.js';
import { Sandbox } from './transfer.js';

/** How long a stop waits for answers in flight before cutting the connections. */
const STOP_GRACE_MS = 3000;

export async function runAgent(loaded: LoadedConf): Promise<void> {
  const { conf, home } = loaded;
  const pidFile = home.run(PID_NAME);
  const log = createLogger({
    name: 'ibcmd',
    level: (conf.log.level ?? 'info') as LogLevel,
    file: home.resolve(conf.log.main ?? 'log/ibcmd.log'),
    eventFile: conf.log.event ? home.resolve(conf.log.event) : undefined,
  });
  try {
    home.ensure();
    const sandbox = Sandbox.open(home.resolve(conf.sandbox), conf.files.max_file_size);
    // the command PATH is checked once, and programs of the lists resolved against it now
    const cp = commandPath(conf.exec.path, sandbox.root);
    if (cp.errors.length > 0) throw new IbpError('IBP_ERR_CMD_PATH_UNSAFE', { detail: cp.errors.join('; ') });
    for (const w of cp.warnings) log.warn(`command PATH , ${w}`);
    const policy = compilePolicy(conf.black_list, conf.white_list, new ProgramResolver(cp.dirs, sandbox.root), sandbox.root);
    for (const w of policy.warnings) log.warn(`white list , ${w}`);
    const callers = [
      { name: DEFAULT_CALLER, secret: readCredential(home.resolve(conf.credential_file)) },
      ...(conf.callers ?? []).map((c) => ({ name: c.name, secret: readCredential(home.resolve(c.credential_file)) })),
    ];
    const state: AgentState = {
      ip: conf.server.ip,
      port: conf.server.port,
      home: home.root,
      user: currentUser(),
      startedAt: Date.now(),
      policy,
      sandbox,
      runner: new Runner(conf.exec.max_concurrent),
      callers,
      auth: conf.auth ?? { max_failures: 10, failure_window_seconds: 60 },
      exec: {
        path: cp.dirs,
        pathIsWhole: true,
        timeoutMs: Math.round(conf.exec.command_timeout * 1000),
        maxOutput: conf.exec.max_output_size,
      },
      log,
      audit: createLogger({ name: 'ibcmd-audit', level: 'info', file: home.resolve(conf.audit.file) }),
      requests: 0,
      refused: 0,
      stopping: false,
    };
    const app = buildServer(state, { commandTimeoutMs: state.exec.timeoutMs });
    await app.listen({ host: conf.server.ip, port: conf.server.port });
    writePid(pidFile);

    installSignals({
      stop: (signal) => {
        if (state.stopping) return;
        state.stopping = true;
        log.info(`stopping , signal[${signal}] running[${state.runner.running}]`);
        // killed commands answer at once (with Connection: close); idle keep-alive connections
        // are closed by close(); whatever still hangs on is cut after a grace period
        state.runner.killAll();
        setTimeout(() => app.server.closeAllConnections(), STOP_GRACE_MS).unref();
        void app.close().finally(() => {
          removePid(pidFile);
          log.warn(`ibcmd stopped , pid[${process.pid}]`);
          process.exit(0);
        });
      },
    });
    process.on('uncaughtException', (e) => {
      log.fatal(`uncaught exception , ${errorText(e)} ${(e as Error).stack ?? ''}`);
      state.runner.killAll();
      removePid(pidFile);
      process.exit(1);
    });
    log.warn(`ibcmd started , pid[${process.pid}] ip[${conf.server.ip}] port[${conf.server.port}] sandbox[${state.sandbox.root}] user[${state.user}] callers[${callers.map((c) => c.name).join(' ')}]`);
    reportReady();
  } catch (e) {
    log.error(`ibcmd start failed , ${errorText(e)}`);
    reportFailed(errorText(e));
    throw e;
  }
}

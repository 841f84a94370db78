/**
 * The ibms worker: the child the monitor forks. Loads the registry, serves the REST API, watches
 * so/ when `misc.auto_download_bin_enable` is 1, expires sessions, and stops gracefully.
 *
 * Talks to its monitor over the IPC channel:
 *   → {type:'ready', listen, epoch, load_ms, loaded_from}   serving
 *   → {type:'failed', detail, exit}                         could not start (exit code follows)
 * SIGTERM (or the monitor going away) = graceful stop: held watches are answered at once,
 * requests in flight finish, then the process exits 0.
 *
 * Run as `node dist/ibms/worker.js <ibms.conf> <home>`.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadConfigFile } from '../lib/config/load.js';
import { IbmsConf } from '../lib/config/ibms-conf.js';
import { EXIT } from '../lib/exit-codes.js';
import { errorText, isIbpError } from '../lib/errors.js';
import { Home } from '../lib/home.js';
import { createLogger, type Logger, type LogLevel } from '../lib/log.js';
import { installSignals } from '../lib/signals.js';
import { Registry } from './registry.js';
import { buildServer } from './server.js';
import { registrySchedules } from './schedule.js';

export type WorkerMessage =
  | { type: 'ready'; listen: string; epoch: string; load_ms: number; loaded_from: Record<string, string> }
  | { type: 'failed'; detail: string; exit: number };

function tell(msg: WorkerMessage): void {
  process.send?.(msg);
}

export function workerLogger(home: Home, conf: IbmsConf): Logger {
  return createLogger({
    name: 'ibms',
    level: conf.log.level as LogLevel | undefined,
    file: home.resolve(conf.log.worker ?? 'log/ibms_worker.log'),
    ...(conf.log.event ? { eventFile: home.resolve(conf.log.event) } : {}),
    base: { role: 'worker' },
    rotate: conf.log.rotate,
  });
}

export async function runWorker(confFile: string, homeRoot: string): Promise<void> {
  const home = new Home(homeRoot);
  let log: Logger | undefined;
  const fail = (e: unknown, exit: number): never => {
    log?.fatal(`worker start failed , ${errorText(e)}`);
    tell({ type: 'failed', detail: errorText(e), exit });
    process.exit(exit);
  };
  let conf: IbmsConf;
  try {
    conf = loadConfigFile(IbmsConf, confFile, 'ibms');
    log = workerLogger(home, conf);
  } catch (e) {
    return fail(e, EXIT.INIT);
  }
  process.title = `ibms: worker ${conf.server.ip}:${conf.server.port} ${confFile}`;
  process.on('uncaughtException', (e) => {
    log!.fatal({ err: e }, `uncaught exception , ${errorText(e)}`);
    process.exit(EXIT.FAILURE);
  });

  let reg: Registry;
  try {
    reg = new Registry({ home, conf, log });
  } catch (e) {
    return fail(e, isIbpError(e) ? EXIT.INIT : EXIT.FAILURE);
  }
  log.info(`registry loaded , nodes[${reg.store.nodes.size}] apps[${reg.store.apps.size}] projects[${reg.store.projects.size}] from[${Object.values(reg.loadedFrom).join(',')}] ms[${reg.loadMs.toFixed(1)}] epoch[${reg.versions.epoch}]`);

  const app = buildServer(reg);
  try {
    await app.listen({ host: conf.server.ip, port: conf.server.port });
  } catch (e) {
    return fail(new Error(`cannot listen on ${conf.server.ip}:${conf.server.port}: ${(e as Error).message}`), EXIT.INIT);
  }
  if (conf.misc.auto_download_bin_enable === 1) {
    await reg.packages.watch(
      (bin) => {
        try {
          reg.packageChanged(bin, true);
        } catch (e) {
          log!.error(`package ${bin} changed , ${errorText(e)}`);
        }
      },
      (e) => log!.error(`so/ watcher , ${errorText(e)}`),
    );
    log.info(`watching ${reg.packages.dir} for packages`);
  }
  const expiry = setInterval(() => {
    for (const s of reg.sessions.expire()) log!.info(`session expired , ${s.role} node[${s.node}] ip[${s.ip}] port[${s.port}] pid[${s.pid}]`);
  }, 1000);
  expiry.unref();
  const schedules = registrySchedules(reg, log);

  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log!.info(`worker stopping , ${why}`);
    schedules.stop();
    clearInterval(expiry);
    try {
      await app.close();
    } catch (e) {
      log!.error(`close failed , ${errorText(e)}`);
    }
    log!.info('worker stopped');
    process.exit(EXIT.OK);
  };
  installSignals({
    stop: (sig) => void stop(sig),
    reload: () => log!.info('SIGHUP , reload is not supported: save_config and restart ibms to re-read the files'),
    special: () => log!.info('SIGUSR2 , ignored by the ibms worker'),
  });
  process.on('disconnect', () => void stop('monitor went away'));

  const listen = `${conf.server.ip}:${conf.server.port}`;
  log.info(`worker serving , listen[${listen}]`);
  tell({ type: 'ready', listen, epoch: reg.versions.epoch, load_ms: reg.loadMs, loaded_from: reg.loadedFrom });
}

function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isEntry()) {
  const [confFile, homeRoot] = process.argv.slice(2);
  if (!confFile || !homeRoot) {
    process.stderr.write('usage: node worker.js <ibms.conf> <home> (started by the ibms monitor)\n');
    process.exit(EXIT.USAGE);
  }
  void runWorker(confFile, homeRoot);
}

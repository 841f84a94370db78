/**
 * The ibms monitor: the daemon's parent process (IBP's 父进程). It forks the worker, reports
 * ready to `ibms -a start` once the worker serves, writes the pid file, restarts the worker when
 * it dies, and on SIGTERM stops the worker gracefully and then itself.
 *
 * Restart policy: a worker that dies is restarted after a delay that doubles from 200 ms up to
 * 10 s while workers keep dying within 10 s of their start; a worker that lived longer resets it.
 * A worker that fails its very first start fails `ibms -a start` (no loop on a broken config).
 *
 * Signals: TERM/INT stop; USR1 reopens the monitor's logs and is passed to the worker;
 * USR2 and HUP are logged and ignored (a reload would lose unsaved changes: save and restart).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IbmsConf } from '../lib/config/ibms-conf.js';
import { reportFailed, reportReady } from '../lib/daemon.js';
import { EXIT } from '../lib/exit-codes.js';
import type { Home } from '../lib/home.js';
import { createLogger, type Logger, type LogLevel } from '../lib/log.js';
import { removePid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import type { WorkerMessage } from './worker.js';
import { PID_FILE } from './paths.js';

const WORKER_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
const STOP_TIMEOUT_MS = 30_000;
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;
const STABLE_MS = 10_000;

interface WorkerSlot {
  child: ChildProcess;
  startedAt: number;
  ready: boolean;
  failure?: string;
}

export function monitorLogger(home: Home, conf: IbmsConf): Logger {
  return createLogger({
    name: 'ibms',
    level: conf.log.level as LogLevel | undefined,
    file: home.resolve(conf.log.monitor ?? 'log/ibms_monitor.log'),
    ...(conf.log.event ? { eventFile: home.resolve(conf.log.event) } : {}),
    base: { role: 'monitor' },
    rotate: conf.log.rotate,
  });
}

export async function runMonitor(opts: { confFile: string; home: Home; conf: IbmsConf }): Promise<void> {
  const { confFile, home, conf } = opts;
  const log = monitorLogger(home, conf);
  const pidFile = home.run(PID_FILE);
  process.title = `ibms: monitor ${conf.server.ip}:${conf.server.port} ${confFile}`;
  log.info(`monitor starting , conf[${confFile}] home[${home.root}]`);

  let worker: WorkerSlot | undefined;
  let everReady = false;
  let stopping = false;
  let backoff = BACKOFF_MIN_MS;
  let restartTimer: NodeJS.Timeout | undefined;

  const spawnWorker = (): void => {
    const env = { ...process.env };
    delete env.IBP_DAEMON_CHILD;
    const child = fork(WORKER_JS, [confFile, home.root], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
    const slot: WorkerSlot = { child, startedAt: Date.now(), ready: false };
    worker = slot;
    log.info(`worker started , pid[${child.pid}]`);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n').filter((l) => l.trim())) log.warn(`worker(${child.pid}) stderr , ${line}`);
    });
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') {
        slot.ready = true;
        log.info(`worker ready , pid[${child.pid}] listen[${m.listen}] epoch[${m.epoch}] from[${Object.values(m.loaded_from).join(',')}] load_ms[${m.load_ms.toFixed(1)}]`);
        if (!everReady) {
          everReady = true;
          writePid(pidFile);
          reportReady();
          process.stderr.on('error', () => undefined); // the starter closed its end
        }
      } else if (m.type === 'failed') {
        slot.failure = m.detail;
      }
    });
    child.on('exit', (code, signal) => onWorkerExit(slot, code, signal));
  };

  const onWorkerExit = (slot: WorkerSlot, code: number | null, signal: NodeJS.Signals | null): void => {
    if (worker === slot) worker = undefined;
    const how = signal ?? `code ${code}`;
    if (stopping) {
      log.info(`worker exited , pid[${slot.child.pid}] ${how}`);
      return;
    }
    if (!everReady) {
      const detail = slot.failure ?? `worker exited with ${how} before serving`;
      log.fatal(`start failed , ${detail}`);
      reportFailed(detail);
      process.exit(code === EXIT.INIT ? EXIT.INIT : EXIT.FAILURE);
    }
    const lived = Date.now() - slot.startedAt;
    backoff = lived >= STABLE_MS ? BACKOFF_MIN_MS : Math.min(backoff * 2, BACKOFF_MAX_MS);
    log.error(`worker died , pid[${slot.child.pid}] ${how}${slot.failure ? ` (${slot.failure})` : ''} lived_ms[${lived}] , restarting in ${backoff} ms`);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopping) spawnWorker();
    }, backoff);
  };

  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info(`monitor stopping , ${why}`);
    if (restartTimer) clearTimeout(restartTimer);
    const w = worker;
    if (w && w.child.exitCode === null && w.child.signalCode === null) {
      const gone = new Promise<void>((resolve) => w.child.once('exit', () => resolve()));
      w.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        log.warn(`worker pid[${w.child.pid}] still running after ${STOP_TIMEOUT_MS} ms , SIGKILL`);
        w.child.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      await gone;
      clearTimeout(timer);
    }
    removePid(pidFile);
    log.info('monitor stopped');
    process.exit(EXIT.OK);
  };

  installSignals({
    stop: (sig) => void stop(sig),
    reopen: () => {
      worker?.child.kill('SIGUSR1');
      log.info('logs reopened');
    },
    special: () => log.info('SIGUSR2 , ignored: ibms has no reload (save_config, then restart)'),
    reload: () => log.info('SIGHUP , ignored: ibms has no reload (save_config, then restart)'),
  });
  spawnWorker();
}

/**
 * Entry point of a worker process, spawned by the manager (never run by hand):
 *
 *   node dist/ibas/worker-main.js      fd 3 = the listen socket (pool) or the connection (FORK)
 *   env IBAS_CONF, IBAS_CONF_JSON, IBAS_SLOT, IBAS_GENERATION, IBAS_WORKER_MODE (pool | fork),
 *       IBP_HOME (encoded and decoded by ibas/handover.ts only)
 *
 * A worker does not read or validate ibas.conf: IBAS_CONF_JSON is the conf its manager validated
 * (ibas/handover.ts), and ibma.conf is read for its shm.index_key only (lib/config/ibma-index-key.ts).
 * So nothing here imports ajv or TypeBox (they cost 5–8 MB of RSS per worker, issue 9); type-only
 * imports of lib/config/*-conf.ts are free, value imports are not (test/ibas/worker-modules.test.ts
 * fails when one comes back).
 *
 * stderr is the worker's log file (the manager opens it), so even a crash before the logger is
 * up leaves its trace there. Exit codes follow lib/exit-codes.ts: CHILD_INIT when it cannot
 * start (the manager counts it against the restart budget).
 */
import { errorText } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import { createLogger, flushLogs, type LogLevel } from '../lib/log.js';
import { installSignals } from '../lib/signals.js';
import { AcceptLock } from './accept-lock.js';
import { instanceOf } from './instance.js';
import { ReplayCache, replayCacheNeeded } from './replay-cache.js';
import { Scoreboard } from './scoreboard.js';
import { Worker } from './worker.js';
import { removePrivateDirs } from './app-cache.js';
import { decodeWorkerEnv } from './handover.js';
import { libc } from '../lib/native/libc.js';
import { installCrashCapture } from '../lib/native/crash.js';
import { AlarmGuard } from './tx-guard.js';
import { useAppStats } from './tx-log.js';
import { startHeapTrim } from './heap-trim.js';

/**
 * Leave with _exit(2), not process.exit(): nothing of the worker's state needs Node's exit
 * handlers (the buffered log lines are written here first, the accept lock goes back through SEM_UNDO), and
 * libuv's shutdown would join any thread of the pool still blocked in a native call. Exit
 * handlers do not run, so the worker's private app folder (ibas/app-cache.ts) is removed here
 * first.
 */
const sysExit = libc.func('void _exit(int status)') as unknown as (status: number) => void;
/** `--cpu-prof` (IBAS_NODE_ARGS of the bench): the profile is written by Node's exit, so leave through it. */
const PROFILING = process.execArgv.some((a) => a.startsWith('--cpu-prof'));
function hardExit(code: number): never {
  flushLogs();
  removePrivateDirs();
  if (PROFILING) process.exit(code);
  sysExit(code);
  throw new Error('unreachable');
}

const LISTEN_FD = 3;
/**
 * The worker log holds lines below warn in memory up to this many bytes (about ten transaction
 * lines), written out when full, before a wait once 20 ms old, at every turn of the event loop and
 * before the worker exits (lib/log.ts): a worker killed without a word loses at most these.
 */
const LOG_BUFFER_BYTES = 4096;
const PR_SET_PDEATHSIG = 1;
const prctl = libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)') as unknown as (o: number, a: number, b: number, c: number, d: number) => number;

/**
 * A worker must not outlive its manager (`ibas -a kill`, a manager crash): it would keep the
 * listen socket open and serve unsupervised. The kernel sends it SIGTERM when the manager dies
 * (PR_SET_PDEATHSIG), which is a graceful stop like any other.
 */
function followManager(): boolean {
  const manager = process.ppid;
  prctl(PR_SET_PDEATHSIG, 15, 0, 0, 0);
  return process.ppid === manager && manager !== 1;
}

async function main(): Promise<number> {
  const env = decodeWorkerEnv();
  if (!env) {
    process.stderr.write('ibas worker: started without a valid IBAS_CONF / IBAS_CONF_JSON / IBAS_SLOT / IBAS_GENERATION / IBAS_WORKER_MODE: workers are spawned by the ibas manager\n');
    return EXIT.CHILD_INIT;
  }
  const { confFile, conf, slot: index, generation, kind: mode } = env;
  if (!followManager()) {
    process.stderr.write('ibas worker: the manager is already gone\n');
    return EXIT.CHILD_INIT;
  }
  let worker: Worker;
  let log;
  try {
    const inst = instanceOf(confFile, conf);
    process.title = `ibas: worker ${index} gen ${generation} [${inst.conf.server.ip}:${inst.conf.server.port}]`;
    log = createLogger({ name: 'ibas', level: (inst.conf.log.level ?? 'info') as LogLevel, file: inst.workerLog(index), eventFile: inst.eventLog, base: { role: 'worker', slot: index, generation }, rotate: inst.conf.log.rotate, bufferBytes: LOG_BUFFER_BYTES });
    useAppStats(inst.appStatsKey);
    const scoreboard = Scoreboard.attach(inst.scoreboardKey);
    if (!scoreboard) throw new Error(`no scoreboard at key 0x${inst.scoreboardKey.toString(16)}: is the manager gone?`);
    const lock = mode === 'pool' ? AcceptLock.open(inst.acceptLockKey) : undefined;
    // only a server that can sign has the shared replay cache (ibas/replay-cache.ts replayCacheNeeded)
    const signs = replayCacheNeeded(inst.conf.security);
    const replay = signs ? ReplayCache.attach(inst.replayCacheKey) : undefined;
    if (signs && !replay) throw new Error(`no replay cache at key 0x${inst.replayCacheKey.toString(16)}: is the manager gone?`);
    // stderr (fd 2) is this worker's log file: a crashing app leaves its signal and backtrace there
    installCrashCapture(2);
    worker = new Worker({ inst, mode, index, generation, scoreboard, fd: LISTEN_FD, lock, replay, log, alarm: new AlarmGuard() });
  } catch (e) {
    (log ?? console).error?.(`worker init failed , reason[${errorText(e)}]`);
    process.stderr.write(`ibas worker ${index}: init failed: ${errorText(e)}\n`);
    return EXIT.CHILD_INIT;
  }
  // app.preload: load now; a failure is a boot error the manager's restart budget counts
  for (const app of worker.opts.inst.conf.app.preload ?? []) {
    try {
      worker.resolver.load(worker.resolver.lookup(app));
      log.info(`app preloaded , app[${app}]`);
    } catch (e) {
      log.error(`app preload failed , app[${app}] reason[${errorText(e)}] , the worker cannot serve`);
      return EXIT.APP_LOAD;
    }
  }
  const exitNow = (): void => {
    worker.slot.state('GRACEFUL');
    hardExit(EXIT.OK);
  };
  installSignals({
    stop: (sig) => worker.stop(sig, exitNow),
    special: () => log.info('SIGUSR2 ignored by a worker (the manager upgrades)'),
  });
  startHeapTrim(); // after start-up and preloads: what compiling them freed goes back (issue 9)
  process.on('uncaughtException', (e) => {
    log.fatal({ err: errorText(e), stack: e.stack }, `worker uncaught exception , reason[${errorText(e)}]`);
    hardExit(EXIT.FAILURE);
  });
  return worker.run();
}

main().then(
  (code) => hardExit(code),
  (e) => {
    process.stderr.write(`ibas worker: ${(e as Error)?.stack ?? String(e)}\n`);
    hardExit(EXIT.FAILURE);
  },
);

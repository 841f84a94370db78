/**
 * `ibas -a start --foreground`: one process, no manager, one worker loop — for running under a
 * debugger (`node --inspect bin/ibas -a start --foreground`) or watching logs on the terminal
 * (IBP's debug mode, nginx's NGX_PROCESS_SINGLE). It binds the listen socket itself, keeps a
 * one-slot scoreboard so `-s bbdetail` works, writes the pid file, and stops on SIGTERM/Ctrl-C
 * after the running transaction.
 *
 * `--app FILE` (issue 15): serve that one app file (.so or .mjs, e.g. the output of `npm run
 * build` in an app made by `ibpgen new-app`) for any app code, or only `--app-code CODE`, without
 * ibma or a config space; a changed file is reloaded on the next call as usual.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IbpError, errorText } from '../lib/errors.js';
import { serveSingleApp, type SingleApp } from './app-resolver.js';
import { EXIT } from '../lib/exit-codes.js';
import type { Logger } from '../lib/log.js';
import { removePid, writePid } from '../lib/pidfile.js';
import { installSignals } from '../lib/signals.js';
import { type Instance, sbModeOf, slotCapacity } from './instance.js';
import { closeSocket, openListenSocket } from './listen-socket.js';
import { ReplayCache, replayCacheNeeded } from './replay-cache.js';
import { Scoreboard } from './scoreboard.js';
import { Worker, resetFileDir } from './worker.js';

export async function runForeground(inst: Instance, log: Logger, single: SingleApp | undefined, onReady: () => void): Promise<number> {
  if (single) {
    if (!fs.existsSync(single.file)) throw new IbpError('IBP_ERR_APP_LOAD', { app: single.app ?? '(any)', file: single.file, detail: 'no such file' });
    serveSingleApp(single);
    log.info({ file: single.file, app: single.app }, `serving one app file , file[${path.resolve(single.file)}] app[${single.app ?? '*'}]`);
  }
  const { ip, port } = inst.conf.server;
  const fd = openListenSocket(ip, port, inst.comm.backlog);
  const sb = Scoreboard.create(inst.scoreboardKey, slotCapacity(inst.conf, true), sbModeOf(inst.conf, true), 1);
  const replay = replayCacheNeeded(inst.conf.security) ? ReplayCache.create(inst.replayCacheKey, inst.conf.security.replay_cache_size) : undefined;
  sb.prepare(0, 1);
  sb.assign(0, process.pid);
  resetFileDir(inst.fileDir(0));
  process.title = `ibas: foreground [${ip}:${port}]`;
  const worker = new Worker({ inst, mode: 'foreground', index: 0, generation: 1, scoreboard: sb, fd, replay, log });
  const cleanup = (): void => {
    sb.destroy();
    replay?.destroy();
    closeSocket(fd);
    removePid(inst.pidFile);
  };
  let exiting = false;
  const exitNow = (): void => {
    if (exiting) return;
    exiting = true;
    cleanup();
    log.info('foreground server stopped');
    process.exit(EXIT.OK);
  };
  installSignals({ stop: (s) => worker.stop(`${s} received`, exitNow) });
  writePid(inst.pidFile);
  log.info(`foreground server started , listen[${ip}:${port}] pid[${process.pid}]`);
  onReady();
  try {
    return await worker.run();
  } catch (e) {
    log.error(`foreground server failed , reason[${errorText(e)}]`);
    return EXIT.FAILURE;
  } finally {
    if (!exiting) {
      exiting = true;
      cleanup();
    }
  }
}

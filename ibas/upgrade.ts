/**
 * The USR2 graceful upgrade (nginx's protocol), one role with an explicit state:
 *
 *   IDLE ──USR2──▶ STARTING ──ready──▶ HANDED_OVER   (this manager stops; its workers finish)
 *                     │
 *                     └──exit / failure / upgrade_timeout──▶ ROLLED_BACK ──USR2──▶ STARTING …
 *
 * STARTING: the pid file is renamed to `<pid file>.oldbin`, and a new-generation manager is
 * started from the code on disk (dist/bin/ibas.js) through lib/daemon.ts's startDaemon — the same
 * detached spawn and ready pipe (fd 3) as `ibas -a start` — with the listen socket inherited on
 * fd 4 and the handover in its environment (ibas/handover.ts). It attaches the shared scoreboard
 * and accept lock, starts its workers, writes the pid file and reports ready.
 * HANDED_OVER: this manager stops (queued connections are accepted by the new workers; the socket
 * is never closed) and exits without removing what the new generation now uses.
 * ROLLED_BACK: the new generation is killed (startDaemon does it), `.oldbin` is renamed back and
 * this generation keeps serving; the host frees the slots the dead generation left.
 *
 * While an upgrade is under way the state is also written to `run/ibas.upgrade` (JSON: state,
 * generations and pids), so `ibas -s status` shows both generations; it is removed once over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import writeFileAtomic from 'write-file-atomic';
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { startDaemon } from '../lib/daemon.js';
import { writePid } from '../lib/pidfile.js';
import { encodeUpgradeEnv } from './handover.js';
import type { Instance } from './instance.js';

/** The ibas entry point on disk: a new generation runs whatever code is there now. */
export const IBAS_MAIN = fileURLToPath(new URL('../bin/ibas.js', import.meta.url));

/**
 * The code a USR2 new generation runs: the home's current release (`$IBP_HOME/current`, switched
 * by scripts/ibp_unpack.sh, docs/cluster.md) when there is one, else the code this manager was
 * started from.
 */
export function upgradeMain(homeRoot: string): string {
  const release = path.join(homeRoot, 'current', 'dist', 'bin', 'ibas.js');
  return fs.existsSync(release) ? release : IBAS_MAIN;
}

export const UPGRADE_STATES = ['IDLE', 'STARTING', 'HANDED_OVER', 'ROLLED_BACK'] as const;
export type UpgradeState = (typeof UPGRADE_STATES)[number];

/** What `run/ibas.upgrade` holds (read by `ibas -s status`). */
export interface UpgradeRecord {
  state: UpgradeState;
  /** The generation handing over and its manager. */
  from: { generation: number; pid: number };
  /** The generation starting (pid -1 until spawned). */
  to: { generation: number; pid: number };
  since: number;
}

export interface UpgradeHost {
  readonly inst: Instance;
  readonly log: Logger;
  readonly generation: number;
  readonly listenFd: number;
  /** Why an upgrade cannot start now (stopping, previous generation still leaving), or undefined. */
  upgradeBlocked(): string | undefined;
  /** The new generation is ready: stop this one, leaving the shared state to it. */
  handedOver(generation: number, pid: number): void;
  /** The new generation failed: free the slots it may have left. */
  rolledBack(generation: number): void;
}

export function upgradeFile(inst: Instance): string {
  return `${inst.pidFile.replace(/\.pid$/, '')}.upgrade`;
}

/** The upgrade under way in this home, if any (for `-s status`). */
export function readUpgrade(inst: Instance): UpgradeRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(upgradeFile(inst), 'utf8')) as UpgradeRecord;
  } catch {
    return undefined;
  }
}

export class Upgrade {
  readonly #host: UpgradeHost;
  #state: UpgradeState = 'IDLE';
  #record: UpgradeRecord | undefined;

  constructor(host: UpgradeHost) {
    this.#host = host;
  }

  get state(): UpgradeState {
    return this.#state;
  }

  /** SIGUSR2. */
  start(): void {
    const h = this.#host;
    const refuse = (why: string): void => h.log.warn(`signal SIGUSR2 received , upgrade refused: ${why}`);
    if (this.#state === 'STARTING') return refuse(`generation ${this.#record!.to.generation} (pid ${this.#record!.to.pid}) is already starting`);
    if (this.#state === 'HANDED_OVER') return refuse(`handed over to generation ${this.#record!.to.generation} (pid ${this.#record!.to.pid}) already`);
    const blocked = h.upgradeBlocked();
    if (blocked) return refuse(blocked);
    const { inst } = h;
    const oldbin = `${inst.pidFile}.oldbin`;
    const generation = h.generation + 1;
    try {
      fs.renameSync(inst.pidFile, oldbin);
    } catch (e) {
      h.log.error(`upgrade failed , reason[cannot rename the pid file: ${errorText(e)}] , generation ${h.generation} keeps serving`);
      return;
    }
    this.#enter('STARTING', { state: 'STARTING', from: { generation: h.generation, pid: process.pid }, to: { generation, pid: -1 }, since: Date.now() });
    const main = upgradeMain(inst.home.root);
    h.log.info(`signal SIGUSR2 received , upgrade: pid file renamed to ${path.basename(oldbin)} , starting generation ${generation} from ${main}`);
    startDaemon({
      tool: 'ibas',
      pidFile: inst.pidFile,
      logFile: inst.monitorLog,
      argv: [main, '-f', inst.confFile, '-a', 'start'],
      env: encodeUpgradeEnv(process.env, inst.home.root, { generation, from: process.pid }),
      inheritFds: [h.listenFd],
      timeoutMs: inst.monitor.upgradeTimeoutMs,
      onSpawn: (pid) => {
        this.#record!.to.pid = pid;
        this.#save();
        h.log.info(`upgrade: generation ${generation} pid[${pid}] spawned , waiting for it to report ready`);
      },
    }).then(
      (pid) => this.#ready(generation, pid),
      (e) => this.#failed(generation, errorText(e).replace(/^IBP_ERR_\w+: /, '')),
    );
  }

  #ready(generation: number, pid: number): void {
    if (this.#state !== 'STARTING') return;
    this.#record!.to.pid = pid;
    this.#enter('HANDED_OVER');
    this.#host.log.info(`upgrade: generation ${generation} pid[${pid}] is ready , generation ${this.#host.generation} stops accepting; its workers finish their current connection`);
    this.#host.handedOver(generation, pid);
  }

  #failed(generation: number, why: string): void {
    if (this.#state !== 'STARTING') return;
    const pid = this.#record!.to.pid;
    const { pidFile } = this.#host.inst;
    try {
      fs.renameSync(`${pidFile}.oldbin`, pidFile);
    } catch {
      writePid(pidFile);
    }
    this.#enter('ROLLED_BACK');
    this.#host.log.error({ alert: 'upgrade_rollback', generation }, `upgrade rolled back , generation ${generation} pid[${pid}] failed: ${why} , it was killed, the pid file is back, generation ${this.#host.generation} keeps serving`);
    this.#host.rolledBack(generation);
    this.#clearFile();
  }

  /**
   * The server is told to stop while a new generation is starting (`ibas -a stop` finds the old
   * manager through `.oldbin`): the new generation is killed and the pid file put back, so the
   * stop ends both generations and leaves nothing half-handed-over.
   */
  abort(why: string): void {
    if (this.#state !== 'STARTING') return;
    const { pid, generation } = this.#record!.to;
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#failed(generation, why);
  }

  /** The manager leaves (after a handover, or a stop): the record goes with it. */
  finish(): void {
    if (this.#state === 'HANDED_OVER' || this.#state === 'STARTING') this.#clearFile();
  }

  #enter(state: UpgradeState, record?: UpgradeRecord): void {
    this.#state = state;
    if (record) this.#record = record;
    if (this.#record) this.#record.state = state;
    this.#save();
  }

  #save(): void {
    if (!this.#record) return;
    try {
      writeFileAtomic.sync(upgradeFile(this.#host.inst), `${JSON.stringify(this.#record)}\n`);
    } catch (e) {
      this.#host.log.warn(`upgrade state file not written , reason[${errorText(e)}]`);
    }
  }

  #clearFile(): void {
    try {
      fs.unlinkSync(upgradeFile(this.#host.inst));
    } catch {
      // gone
    }
  }
}

/**
 * `ibas -s status | bbstat | bbdetail`: the scoreboard read from shared memory (Tuxedo's bbstat /
 * printserver, httpd's mod_status). Tables for people, `--json` for scripts.
 *
 *   status    is the manager running: pid, mode, listen address, generation, workers by state,
 *             and the pool in one line of status characters (`_` idle, `L` listening (holds the
 *             accept lock), `W` working, `K` keep-alive, `S` starting, `G` leaving, `.` free);
 *             during a USR2 handover both generations (the old manager's pid from `.oldbin`, the
 *             new one's from ibas.upgrade / the pid file); the suspended apps (crash-loop brake)
 *             then one row per worker like `pm2 ls`: slot, pid, state, uptime, transactions /
 *             recycle limit, cpu, memory (pidusage), restarts of its slot, the app it runs (or ran
 *             last) and, while it runs, its age
 *   bbstat    pool totals: workers by state, transactions and errors (live + exited workers),
 *             workers spawned, abnormal exits, accept lock free/held
 *   bbdetail  one row per worker: slot, pid, generation, state, app, current transaction age,
 *             transactions, errors, connections, uptime
 *
 * Exit code EXIT.DAEMON (7) when ibas is not running.
 */
import { inDoubtRows } from './in-doubt-admin.js';
import pidusage from 'pidusage';
import { printRows, type Column } from '../lib/cli.js';
import { EXIT } from '../lib/exit-codes.js';
import { isAlive, runningPid } from '../lib/pidfile.js';
import { Semaphore } from '../lib/shm/sysv.js';
import type { Instance } from './instance.js';
import { Scoreboard, STATE_CHAR, WORKER_STATES, type SlotView, type Suspension, type WorkerState } from './scoreboard.js';
import { readUpgrade } from './upgrade.js';

export const SHOWS = ['status', 'bbstat', 'bbdetail'] as const;
export type Show = (typeof SHOWS)[number];

const NOT_RUNNING = EXIT.DAEMON;

/** The managers of this home: the serving one, and during a USR2 handover the other generation. */
export interface Managers {
  /** The manager `-s` talks about (the pid file's; the old one while the new is not yet ready). */
  pid: number;
  upgrade?: { state: string; old: { pid: number; generation: number; alive: boolean }; new: { pid: number; generation: number; alive: boolean } };
}

export /** Two-phase transactions in doubt in the participant log (status line; unreadable log: none shown). */
function inDoubtSummary(inst: Instance): { count: number; oldestS: number } | undefined {
  try {
    const rows = inDoubtRows(inst);
    return rows.length === 0 ? undefined : { count: rows.length, oldestS: Math.max(...rows.map((r) => r.ageS)) };
  } catch {
    return undefined;
  }
}

function managersOf(inst: Instance): Managers | undefined {
  const current = runningPid(inst.pidFile);
  const oldbin = runningPid(`${inst.pidFile}.oldbin`);
  // a record left by a manager that died mid-upgrade (SIGKILL) names a dead pid: ignore it
  const found = readUpgrade(inst);
  const rec = found && isAlive(found.from.pid) ? found : undefined;
  if (current === undefined && oldbin === undefined) return undefined;
  const pid = current ?? oldbin!;
  if (oldbin === undefined && !rec) return { pid };
  const oldPid = oldbin ?? rec?.from.pid ?? -1;
  const newPid = rec?.to.pid ?? (current !== oldbin ? current : undefined) ?? -1;
  return {
    pid,
    upgrade: {
      state: rec?.state ?? 'HANDED_OVER',
      old: { pid: oldPid, generation: rec?.from.generation ?? 0, alive: oldPid > 0 && isAlive(oldPid) },
      new: { pid: newPid, generation: rec?.to.generation ?? 0, alive: newPid > 0 && isAlive(newPid) },
    },
  };
}

function suspensionRows(list: Suspension[], now = Date.now()): { app: string; bin: string; crashes: number; window_s: number; since_s: number }[] {
  return list.map((x) => ({ app: x.app, bin: x.bin, crashes: x.crashes, window_s: x.windowS, since_s: Math.round((now - x.since) / 1000) }));
}

export interface DetailRow {
  slot: number;
  pid: number;
  generation: number;
  state: WorkerState;
  app: string;
  tx_age_ms: number | null;
  transactions: number;
  errors: number;
  connections: number;
  uptime_s: number;
}

export function detailRows(sb: Scoreboard, now = Date.now()): DetailRow[] {
  return sb.all().filter((s) => s.state !== 'DEAD').map((s: SlotView) => ({
    slot: s.index,
    pid: s.pid,
    generation: s.generation,
    state: s.state,
    app: s.app,
    tx_age_ms: s.state === 'WORKING' && s.txStartAt > 0 ? Math.max(0, Math.round(now - s.txStartAt)) : null,
    transactions: s.count,
    errors: s.errors,
    connections: s.connections,
    uptime_s: Math.round((now - s.startedAt) / 100) / 10,
  }));
}

/** What the characters of the pool line mean (STATE_CHAR), in this order. */
const STATE_LABEL: Record<WorkerState, string> = {
  IDLE: 'idle', LISTEN: 'listening', READING: 'reading', WORKING: 'working', KEEPALIVE: 'keep-alive', STARTING: 'starting', GRACEFUL: 'leaving', DEAD: 'free slot',
};
const POOL_LEGEND = `(${(Object.keys(STATE_LABEL) as WorkerState[]).map((st) => `${STATE_CHAR[st]} ${STATE_LABEL[st]}`).join(', ')})`;

export function statusLine(sb: Scoreboard): string {
  let line = '';
  for (let i = 0; i < sb.slots; i++) line += STATE_CHAR[sb.stateOf(i)];
  return line;
}

export function bbstat(sb: Scoreboard, inst: Instance): Record<string, number | string> {
  const h = sb.header();
  const rows = sb.all();
  const byState = Object.fromEntries(WORKER_STATES.filter((s) => s !== 'DEAD').map((s) => [s.toLowerCase(), 0])) as Record<string, number>;
  let tx = h.retiredTx;
  let errors = h.retiredErrors;
  for (const r of rows) {
    if (r.state === 'DEAD') continue;
    byState[r.state.toLowerCase()]!++;
    tx += Math.max(r.count, 0);
    errors += Math.max(r.errors, 0);
  }
  let lock: string = 'none';
  if (h.mode === 'STATIC_WORKERPOOL' || h.mode === 'DYNAMIC_WORKERPOOL') {
    try {
      lock = Semaphore.open(inst.acceptLockKey, false).value() > 0 ? 'free' : 'held';
    } catch {
      lock = 'missing';
    }
  }
  const load = sb.load();
  return {
    mode: h.mode,
    workers: load.total,
    ...byState,
    working_total: `${load.working}/${load.total}`,
    transactions: tx,
    errors,
    spawned: h.spawned,
    abnormal_exits: h.deaths,
    accept_lock: lock,
    pool: statusLine(sb),
  };
}

export interface WorkerStatusRow {
  slot: number;
  pid: number;
  state: WorkerState;
  uptime_s: number;
  transactions: number;
  /** mpm.max_process_count (0 = never recycled; each worker adds its own jitter). */
  recycle_at: number;
  cpu_percent: number | null;
  memory_bytes: number | null;
  /** Workers started in this slot before the current one. */
  restarts: number;
  app: string;
  app_age_ms: number | null;
}

/** One row per live worker, with cpu and memory from pidusage (null when the process is gone). */
export async function workerStatus(sb: Scoreboard, inst: Instance, now = Date.now()): Promise<WorkerStatusRow[]> {
  const live = sb.all().filter((s) => s.state !== 'DEAD' && s.pid > 0);
  let usage: Record<string, { cpu: number; memory: number }> = {};
  try {
    usage = live.length > 0 ? await pidusage(live.map((s) => s.pid)) : {};
  } catch {
    // a worker left between the scoreboard read and the sampling: sample one by one
    for (const s of live) {
      try {
        usage[s.pid] = await pidusage(s.pid);
      } catch {
        // gone
      }
    }
  }
  return live.map((s) => ({
    slot: s.index,
    pid: s.pid,
    state: s.state,
    uptime_s: Math.round((now - s.startedAt) / 1000),
    transactions: s.count,
    recycle_at: inst.conf.mpm.max_process_count,
    cpu_percent: usage[s.pid] ? Math.round(usage[s.pid]!.cpu * 10) / 10 : null,
    memory_bytes: usage[s.pid]?.memory ?? null,
    restarts: Math.max(0, sb.spawnsOf(s.index) - 1),
    // the app it runs, or ran last (like bbdetail); its age only while it runs
    app: s.app,
    app_age_ms: s.state === 'WORKING' && s.txStartAt > 0 ? Math.max(0, Math.round(now - s.txStartAt)) : null,
  }));
}

const mib = (b: number | null): string => (b === null ? '' : `${(b / 1048576).toFixed(1)} MB`);

const STATUS_COLUMNS: Column<WorkerStatusRow>[] = [
  { header: 'slot', value: (r) => r.slot },
  { header: 'pid', value: (r) => r.pid },
  { header: 'state', value: (r) => `${STATE_CHAR[r.state]} ${r.state}` },
  { header: 'uptime', value: (r) => `${r.uptime_s}s` },
  { header: 'tx / recycle', value: (r) => `${r.transactions} / ${r.recycle_at || '∞'}` },
  { header: 'cpu', value: (r) => (r.cpu_percent === null ? '' : `${r.cpu_percent}%`) },
  { header: 'memory', value: (r) => mib(r.memory_bytes) },
  { header: '↺', value: (r) => r.restarts },
  { header: 'app', value: (r) => r.app },
  { header: 'app age', value: (r) => (r.app_age_ms === null ? '' : `${r.app_age_ms} ms`) },
];

export async function show(what: Show, inst: Instance, json: boolean, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const managers = managersOf(inst);
  const pid = managers?.pid;
  const sb = pid !== undefined ? Scoreboard.attach(inst.scoreboardKey) : undefined;
  if (pid === undefined || !sb) {
    if (json) out(`${JSON.stringify({ running: false, pid_file: inst.pidFile })}\n`);
    else out(`ibas is not running (pid file ${inst.pidFile})\n`);
    return NOT_RUNNING;
  }
  try {
    const h = sb.header();
    switch (what) {
      case 'status': {
        const load = sb.load();
        const suspended = suspensionRows(sb.suspensions());
        const up = managers!.upgrade;
        const row = {
          running: true, pid, mode: h.mode, listen: `${inst.conf.server.ip}:${inst.conf.server.port}`, generation: h.generation,
          workers: load.total, working: load.working, uptime_s: Math.round((Date.now() - h.startedAt) / 1000), pool: statusLine(sb),
          ...(up ? { upgrade: up } : {}),
          suspended,
        };
        const rows = await workerStatus(sb, inst);
        if (json) {
          out(`${JSON.stringify({ ...row, worker_list: rows }, null, 2)}\n`);
          return 0;
        }
        out(`ibas is running , pid[${pid}] mode[${h.mode}] listen[${row.listen}] generation[${h.generation}] workers[${load.total}] working[${load.working}] uptime[${row.uptime_s}s]\npool[${row.pool}] ${POOL_LEGEND}\n`);
        printRows(rows, STATUS_COLUMNS, false, out);
        if (up) {
          const gen = (g: number) => (g > 0 ? `generation ${g} ` : '');
          out(`upgrade[${up.state}] , old: ${gen(up.old.generation)}pid[${up.old.pid}] (${inst.pidFile}.oldbin)${up.old.alive ? '' : ' gone'} , new: ${gen(up.new.generation)}pid[${up.new.pid > 0 ? up.new.pid : 'spawning'}]${up.new.pid > 0 && !up.new.alive ? ' gone' : ''}\n`);
        }
        for (const x of suspended) out(`app suspended , app[${x.app}] bin[${x.bin}] crashes[${x.crashes}] within[${x.window_s}s] since[${x.since_s}s ago] (ibas -a resume_app --app ${x.app})\n`);
        const doubt = inDoubtSummary(inst);
        if (doubt) out(`two-phase in doubt[${doubt.count}] oldest[${doubt.oldestS}s] (ibas -s in_doubt)\n`);
        return 0;
      }
      case 'bbstat': {
        const st = bbstat(sb, inst);
        if (json) out(`${JSON.stringify(st, null, 2)}\n`);
        else printRows(Object.entries(st).map(([k, v]) => ({ k, v })), [{ header: 'item', value: (r) => r.k }, { header: 'value', value: (r) => r.v }], false, out);
        return 0;
      }
      case 'bbdetail':
        printRows(detailRows(sb), DETAIL_COLUMNS, json, out);
        return 0;
    }
  } finally {
    sb.detach();
  }
}

const DETAIL_COLUMNS: Column<DetailRow>[] = [
  { header: 'slot', value: (r) => r.slot },
  { header: 'pid', value: (r) => r.pid },
  { header: 'gen', value: (r) => r.generation },
  { header: 'state', value: (r) => `${STATE_CHAR[r.state]} ${r.state}` },
  { header: 'app', value: (r) => r.app },
  { header: 'tx age ms', value: (r) => r.tx_age_ms ?? '' },
  { header: 'transactions', value: (r) => r.transactions },
  { header: 'errors', value: (r) => r.errors },
  { header: 'connections', value: (r) => r.connections },
  { header: 'uptime s', value: (r) => r.uptime_s },
];

/**
 * What one ibas process hands another through its environment: the one encoder and decoder of
 * those variables (the manager spawning a worker; a manager starting its USR2 new generation).
 *
 *   worker          IBAS_CONF (the file's path), IBAS_CONF_JSON (its content as the manager
 *                   validated it, defaults filled in, minus the manager-only sections
 *                   {@link MANAGER_ONLY_SECTIONS}), IBAS_SLOT, IBAS_GENERATION,
 *                   IBAS_WORKER_MODE (pool | fork), IBP_HOME; MALLOC_ARENA_MAX
 *                   ({@link WORKER_MALLOC_ARENAS} unless set; glibc reads it, not the worker)
 *                   fd 3 = the listen socket (pool) or the accepted connection (FORK)
 *   new generation  IBAS_LISTEN_FD (always {@link UPGRADE_LISTEN_FD}), IBAS_GENERATION,
 *                   IBAS_UPGRADE_FROM (the old manager's pid); fd 3 = its ready pipe (lib/daemon.ts)
 *
 * A decoder validates every field and removes the variables it read, so they never leak into the
 * next process (a worker must not believe it is a new generation).
 *
 * A worker does not read ibas.conf: it serves by the conf its manager read and validated at start
 * (or at USR2, a new manager), so it never loads the schema validator (ajv and TypeBox: 5–8 MB of
 * RSS per worker, issue 9) and never serves by an edited file its manager has not read.
 */
import type { IbasConf } from '../lib/config/ibas-conf.js';

/** The fd on which a USR2 new generation inherits the listen socket (3 is lib/daemon.ts's ready pipe). */
export const UPGRADE_LISTEN_FD = 4;

export type WorkerKind = 'pool' | 'fork';

export interface WorkerEnv {
  confFile: string;
  /** The manager's validated ibas.conf (a worker gets it without {@link MANAGER_ONLY_SECTIONS}). */
  conf: IbasConf;
  home: string;
  slot: number;
  generation: number;
  kind: WorkerKind;
}

export interface UpgradeEnv {
  listenFd: number;
  generation: number;
  /** The pid of the manager handing over. */
  from: number;
}

const WORKER_KEYS = ['IBAS_CONF', 'IBAS_CONF_JSON', 'IBAS_SLOT', 'IBAS_GENERATION', 'IBAS_WORKER_MODE'] as const;

/**
 * Sections of ibas.conf only the manager uses, left out of a worker's copy: `schedule` (the
 * manager runs it; its request bodies may be large) and `metrics` (the manager's endpoint and
 * its token).
 */
export const MANAGER_ONLY_SECTIONS = ['schedule', 'metrics'] as const;

/** Linux refuses an environment string ("NAME=value") over 128 KiB (MAX_ARG_STRLEN) with E2BIG. */
const ENV_STRING_MAX = 128 * 1024 - 1;

/**
 * glibc malloc arenas of a worker (MALLOC_ARENA_MAX, unless the manager's environment sets it):
 * the main thread keeps its own, V8's background threads share one instead of one each, which
 * kept a few MB of freed memory per thread in every worker's RSS (issue 9).
 */
export const WORKER_MALLOC_ARENAS = '2';

/** Sections a worker reads: a handed-over conf without one of these objects is refused. */
const WORKER_SECTIONS = ['server', 'mpm', 'security', 'app', 'log', 'ibma'] as const;

function confJson(conf: IbasConf): string {
  const copy: Record<string, unknown> = { ...conf };
  for (const k of MANAGER_ONLY_SECTIONS) delete copy[k];
  const json = JSON.stringify(copy);
  if ('IBAS_CONF_JSON='.length + Buffer.byteLength(json) > ENV_STRING_MAX) {
    throw new Error(`ibas.conf without its ${MANAGER_ONLY_SECTIONS.join(' and ')} sections is ${Buffer.byteLength(json)} bytes of JSON, more than a worker's environment can carry (128 KiB): shorten it`);
  }
  return json;
}

function confOf(json: string | undefined): IbasConf | undefined {
  if (json === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  for (const k of WORKER_SECTIONS) if (o[k] === null || typeof o[k] !== 'object') return undefined;
  return v as IbasConf;
}
const UPGRADE_KEYS = ['IBAS_LISTEN_FD', 'IBAS_GENERATION', 'IBAS_UPGRADE_FROM'] as const;

function int(v: string | undefined, min: number): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

function without(env: NodeJS.ProcessEnv, keys: readonly string[]): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of keys) delete out[k];
  return out;
}

/** The environment of a worker: the manager's own, minus daemon and handover variables. */
export function encodeWorkerEnv(base: NodeJS.ProcessEnv, w: WorkerEnv): NodeJS.ProcessEnv {
  return {
    ...without(base, ['IBP_DAEMON_CHILD', ...UPGRADE_KEYS]),
    MALLOC_ARENA_MAX: base.MALLOC_ARENA_MAX ?? WORKER_MALLOC_ARENAS,
    IBP_HOME: w.home,
    IBAS_CONF: w.confFile,
    IBAS_CONF_JSON: confJson(w.conf),
    IBAS_SLOT: String(w.slot),
    IBAS_GENERATION: String(w.generation),
    IBAS_WORKER_MODE: w.kind,
  };
}

/** A worker reads what its manager gave it; undefined when it was not started by a manager. */
export function decodeWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv | undefined {
  const confFile = env.IBAS_CONF;
  const conf = confOf(env.IBAS_CONF_JSON);
  const slot = int(env.IBAS_SLOT, 0);
  const generation = int(env.IBAS_GENERATION, 1);
  const kind = env.IBAS_WORKER_MODE;
  for (const k of WORKER_KEYS) delete env[k];
  if (!confFile || !conf || slot === undefined || generation === undefined || (kind !== 'pool' && kind !== 'fork')) return undefined;
  return { confFile, conf, home: env.IBP_HOME ?? '', slot, generation, kind };
}

/** The environment of a USR2 new generation (lib/daemon.ts adds IBP_DAEMON_CHILD). */
export function encodeUpgradeEnv(base: NodeJS.ProcessEnv, home: string, u: Omit<UpgradeEnv, 'listenFd'>): NodeJS.ProcessEnv {
  return {
    ...without(base, WORKER_KEYS),
    IBP_HOME: home,
    IBAS_LISTEN_FD: String(UPGRADE_LISTEN_FD),
    IBAS_GENERATION: String(u.generation),
    IBAS_UPGRADE_FROM: String(u.from),
  };
}

/**
 * The daemon child of `ibas -a start`: a handover when it was started as a new generation,
 * undefined for a plain start. Throws on a partial or malformed handover (never half-adopt).
 */
export function takeUpgradeEnv(env: NodeJS.ProcessEnv = process.env): UpgradeEnv | undefined {
  const present = env.IBAS_UPGRADE_FROM !== undefined || env.IBAS_LISTEN_FD !== undefined;
  const listenFd = int(env.IBAS_LISTEN_FD, 0);
  const generation = int(env.IBAS_GENERATION, 2);
  const from = int(env.IBAS_UPGRADE_FROM, 2);
  const raw = UPGRADE_KEYS.map((k) => `${k}=${env[k] ?? ''}`).join(' ');
  for (const k of UPGRADE_KEYS) delete env[k];
  if (!present) return undefined;
  if (listenFd === undefined || generation === undefined || from === undefined) throw new Error(`malformed upgrade handover in the environment: ${raw}`);
  return { listenFd, generation, from };
}

/**
 * Logging for every IBP-TS process, on pino.
 *
 * IBP keeps one log per role: `main` (a tool's own log), `monitor` (a daemon's parent),
 * `worker` (one per worker, e.g. ibas_<ip>-<port>_worker_<n>.log) and `event` (the important
 * events of the whole home: starts, stops, kills, crashes, alerts). A process opens the files its
 * role needs; records at `warn` and above also go to the event log.
 *
 * Lines are JSON (one object a line, pino's shape) so they can be grepped and parsed. The message
 * keeps IBP's shape: `event , key[value]`, with the structured fields beside it as JSON keys.
 * A line never carries a key twice: a field of the record that is also a field of the logger's
 * base (`pid`, `slot`, …) is dropped when equal and renamed otherwise (`pid` → `child_pid`, the
 * worker a manager's line is about; any other `k` → `k_field`), see {@link dedupeFields}.
 *
 * SIGUSR1 → {@link reopenLogs}: every file this process writes is reopened (for logrotate).
 * Writes are synchronous so that a worker killed a moment later has still logged what it did.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino, type Logger, type Level, type DestinationStream } from 'pino';
import { Rotator, type LogRotation } from './log-rotate.js';

export type { Logger } from 'pino';
export type LogLevel = Level;
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

interface Reopenable { readonly fd: number; reopen(file?: string): void; flushSync?(): void }
const openFiles = new Map<string, Reopenable>();

function fileStream(file: string): DestinationStream & Reopenable {
  const existing = openFiles.get(file);
  if (existing) return existing as unknown as DestinationStream & Reopenable;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // SonicBoom (pino.destination) keeps its current descriptor in `fd` (not in its typings)
  const dest = pino.destination({ dest: file, sync: true, mkdir: true }) as ReturnType<typeof pino.destination> & Reopenable;
  openFiles.set(file, dest);
  return dest;
}

/**
 * pino's isoTime (`,"time":"<ISO 8601>"`) with the formatted string kept for the millisecond it
 * stands for: the same text, but Date#toISOString (a printf inside V8) runs once per millisecond
 * instead of once per line. A worker logging a transaction line every few tens of µs saves most
 * of it.
 */
let isoMs = -1;
let isoField = '';
export function isoTime(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoField = `,"time":"${new Date(ms).toISOString()}"`;
  }
  return isoField;
}

export interface LogOptions {
  /** The process name in every line (ibms, ibma, ibas, …). */
  name: string;
  /** Level of the main file. */
  level?: LogLevel;
  /** The role's own log file; `-` means stderr. */
  file: string;
  /** The home's event log (warn and above are copied there); omit for none. */
  eventFile?: string;
  /** Extra fields on every line (slot, pid, generation…). */
  base?: Record<string, unknown>;
  /** The conf's `log.rotate`: size- and/or cron-based rotation of every file of this process (lib/log-rotate.ts). */
  rotate?: LogRotation;
}

let rotator: Rotator | undefined;

/** Rotate this process's log files by size and/or cron (once per process; the last call wins). */
export function startLogRotation(opts: LogRotation | undefined, checkMs = 1000): Rotator | undefined {
  rotator?.stop();
  rotator = undefined;
  if (!opts || (!opts.size && !opts.cron)) return undefined;
  rotator = new Rotator(openFiles, opts);
  rotator.start(checkMs);
  return rotator;
}

/** Keys every line has (pino's own and the logger's base): a record must not repeat them. */
const CORE_KEYS = ['level', 'time', 'msg', 'name', 'hostname'];

/** Rename or drop the record fields that would repeat a base field of the line. */
export function dedupeFields(obj: Record<string, unknown>, base: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(obj)) {
    if (!(k in base) && !CORE_KEYS.includes(k)) continue;
    out ??= { ...obj };
    const v = out[k];
    delete out[k];
    if (k in base && base[k] === v) continue;
    out[k === 'pid' ? 'child_pid' : `${k}_field`] = v;
  }
  return out ?? obj;
}

export function createLogger(opts: LogOptions): Logger {
  const level = opts.level ?? 'info';
  const base = { pid: process.pid, ...opts.base };
  if (opts.rotate) startLogRotation(opts.rotate);
  const streams: { level: LogLevel; stream: DestinationStream }[] = [
    { level, stream: opts.file === '-' ? pino.destination({ dest: 2, sync: true }) : fileStream(opts.file) },
  ];
  if (opts.eventFile && opts.eventFile !== opts.file) streams.push({ level: 'warn', stream: fileStream(opts.eventFile) });
  return pino(
    {
      name: opts.name,
      level,
      base,
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }), log: (obj) => dedupeFields(obj, base) },
    },
    pino.multistream(streams, { dedupe: false }),
  );
}

/** A logger that drops everything (tests of pure functions, `-a check`). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Stop writing `file` (a test's private log): flushed, closed and no longer reopened or rotated. */
export function closeLogFile(file: string): void {
  const dest = openFiles.get(file);
  if (!dest) return;
  openFiles.delete(file);
  try {
    dest.flushSync?.();
    (dest as unknown as { end(): void }).end();
  } catch {
    // already closed
  }
}

/** Reopen every log file this process writes (SIGUSR1). */
export function reopenLogs(): void {
  for (const [file, dest] of openFiles) {
    try {
      dest.reopen(file);
    } catch {
      // keep writing to the old descriptor rather than lose the process
    }
  }
}

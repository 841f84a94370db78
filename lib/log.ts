/**
 * Logging for every IBP-TS process, on pino.
 *
 * IBP keeps one log per role: `main` (a tool's own log), `monitor` (a daemon's parent),
 * `worker` (one per worker, e.g. ibas_<ip>-<port>_worker_<n>.log) and `event` (the important
 * events of the whole home: starts, stops, kills, crashes, alerts). A process opens the files its
 * role needs; records at `warn` and above also go to the event log.
 *
 * Lines are JSON (one object a line, pino's shape) so they can be grepped and parsed. The message
 * keeps IBP's shape: `event , key[value]`, with the structured fields beside it.
 *
 * SIGUSR1 → {@link reopenLogs}: every file this process writes is reopened (for logrotate).
 * Writes are synchronous so that a worker killed a moment later has still logged what it did.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino, type Logger, type Level, type DestinationStream } from 'pino';

export type { Logger } from 'pino';
export type LogLevel = Level;
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

interface Reopenable { reopen(file?: string): void; flushSync?(): void }
const openFiles = new Map<string, Reopenable>();

function fileStream(file: string): DestinationStream & Reopenable {
  const existing = openFiles.get(file);
  if (existing) return existing as unknown as DestinationStream & Reopenable;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const dest = pino.destination({ dest: file, sync: true, mkdir: true });
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
}

export function createLogger(opts: LogOptions): Logger {
  const level = opts.level ?? 'info';
  const streams: { level: LogLevel; stream: DestinationStream }[] = [
    { level, stream: opts.file === '-' ? pino.destination({ dest: 2, sync: true }) : fileStream(opts.file) },
  ];
  if (opts.eventFile && opts.eventFile !== opts.file) streams.push({ level: 'warn', stream: fileStream(opts.eventFile) });
  return pino(
    {
      name: opts.name,
      level,
      base: { pid: process.pid, ...opts.base },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.multistream(streams, { dedupe: false }),
  );
}

/** A logger that drops everything (tests of pure functions, `-a check`). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
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

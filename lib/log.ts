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
 * Writes are synchronous so that a process killed a moment later has still logged what it did.
 * One exception, a process's own file with `bufferBytes` (an ibas worker's, which has a
 * transaction line per transaction): lines below warn gather in memory up to that many bytes and
 * are written in one write(2). The buffer is also written by {@link flushLogs}, which a worker
 * calls at every turn of its event loop (after every wait round that ended without work: at most
 * 100 ms of having nothing to do) and before it exits, and before every warn-or-above line and a
 * reopen; and by {@link flushStaleLogs} before every wait (poll, the accept lock) once its oldest
 * line is LOG_HOLD_MS old. So a worker serving one call after another on a long connection writes
 * a line block every ten calls or so, not one write(2) per call (that write was ~10% of its CPU),
 * and a worker that has nothing to do has logged everything within one wait round. A worker that
 * dies without a word (SIGKILL, a crash inside an app, the tier-1 alarm) loses at most the lines
 * of that buffer: under `bufferBytes` (4 KiB: about ten transaction lines), all written in the
 * last wait round (≤ 100 ms).
 *
 * Warn and above also go to the event log: one pino destination, a two-way tee on the line's
 * level (pino's multistream cost twice a plain destination per line).
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

const WARN = 40;
const METADATA = Symbol.for('pino.metadata');

/**
 * The one destination of a logger: every line to `main`, warn and above also to `event`; with
 * `bufferBytes`, lines below warn gather here and reach `main` in one write once they fill the
 * buffer, at {@link flushLogs}, or before a warn line. pino sets `lastLevel` on a stream marked
 * with the pino.metadata symbol before each write. (SonicBoom's own minLength buffer is not used:
 * its flushSync also fsyncs.)
 */
class Tee {
  readonly [METADATA] = true;
  lastLevel = 0;
  readonly #main: DestinationStream;
  readonly #event: DestinationStream | undefined;
  readonly #bufferBytes: number;
  #pending = '';
  /** Date.now() when the oldest held line came. */
  #since = 0;

  constructor(main: DestinationStream, event: DestinationStream | undefined, bufferBytes: number) {
    this.#main = main;
    this.#event = event;
    this.#bufferBytes = bufferBytes;
    if (bufferBytes > 0) tees.add(this);
  }

  write(line: string): void {
    if (this.lastLevel < WARN) {
      if (this.#bufferBytes === 0) {
        this.#main.write(line);
        return;
      }
      if (this.#pending.length === 0) this.#since = Date.now();
      this.#pending += line;
      if (this.#pending.length >= this.#bufferBytes) this.flush();
      return;
    }
    this.flush();
    this.#main.write(line);
    this.#event?.write(line);
  }

  /** The held lines are at least `ms` old (and there are some). */
  stale(now: number, ms: number): boolean {
    return this.#pending.length > 0 && now - this.#since >= ms;
  }

  /**
   * The held lines in one write(2), straight to the destination's descriptor: a synchronous
   * SonicBoom without minLength holds nothing between its writes, and its own path for a string
   * measures it twice and encodes it twice (once for write, once more to cut what was written).
   * Here the text is encoded once. A destination without a descriptor gets the text as before.
   */
  flush(): void {
    if (this.#pending.length === 0) return;
    const out = this.#pending;
    this.#pending = '';
    const fd = (this.#main as Partial<Reopenable>).fd;
    if (typeof fd !== 'number' || fd < 0) {
      this.#main.write(out);
      return;
    }
    const bytes = Buffer.from(out, 'utf8');
    for (let at = 0, n = 1; at < bytes.length && n > 0; at += n) n = fs.writeSync(fd, bytes, at);
  }
}
const tees = new Set<Tee>();

/** Write out the lines held in memory (loggers with bufferBytes); cheap when there are none. */
export function flushLogs(): void {
  for (const t of tees) {
    try {
      t.flush();
    } catch {
      // a full disk must not take the process down
    }
  }
}

/** How long a worker may hold its log lines across a wait (see the header). */
export const LOG_HOLD_MS = 20;

/**
 * Before a wait: write out the held lines once the oldest is `ms` old (a worker serving calls back
 * to back waits between every two; writing each time would be one write(2) per call).
 */
export function flushStaleLogs(ms = LOG_HOLD_MS): void {
  if (tees.size === 0) return;
  const now = Date.now();
  for (const t of tees) {
    try {
      if (t.stale(now, ms)) t.flush();
    } catch {
      // a full disk must not take the process down
    }
  }
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
  /** Hold lines below warn of `file` in memory up to this many bytes (see the header; 0: none). */
  bufferBytes?: number;
}

let rotator: Rotator | undefined;

/** Rotate this process's log files by size and/or cron (once per process; the last call wins). */
export function startLogRotation(opts: LogRotation | undefined, checkMs = 1000): Rotator | undefined {
  rotator?.stop();
  rotator = undefined;
  if (!opts || (!opts.size && !opts.cron)) return undefined;
  rotator = new Rotator(openFiles, opts, flushLogs);
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
  const main = opts.file === '-' ? pino.destination({ dest: 2, sync: true }) : fileStream(opts.file);
  const event = opts.eventFile && opts.eventFile !== opts.file ? fileStream(opts.eventFile) : undefined;
  const bufferBytes = opts.bufferBytes ?? 0;
  return pino(
    {
      name: opts.name,
      level,
      base,
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }), log: (obj) => dedupeFields(obj, base) },
    },
    event || bufferBytes > 0 ? (new Tee(main, event, bufferBytes) as unknown as DestinationStream) : main,
  );
}

const SYM = pino.symbols;
type PinoInternals = Record<symbol, unknown> & { levelVal: number };

/**
 * Write one record whose fields are already JSON text: `fields` is `,"k":v,...` (keys that are
 * not the logger's base fields), `msgJson` the message as a JSON string literal (quotes and
 * escapes included). The line is the one pino would write for `log[level](fields, msg)` (level,
 * time, the logger's bindings, the fields, msg) without pino walking and stringifying an object:
 * the transaction log line (ibas/tx-log.ts) is written this way, once per transaction. Falls
 * back to pino when its internals are not what this expects.
 */
export function writeRecord(log: Logger, level: 'info' | 'warn', levelVal: number, fields: string, msgJson: string, obj: () => Record<string, unknown>): void {
  const l = log as unknown as PinoInternals;
  if (l.levelVal > levelVal) return;
  const ls = (l[SYM.lsCacheSym] as Record<number, string> | undefined)?.[levelVal];
  const time = l[SYM.timeSym] as (() => string) | undefined;
  const stream = l[SYM.streamSym] as (DestinationStream & Record<symbol | string, unknown>) | undefined;
  if (typeof ls !== 'string' || typeof time !== 'function' || !stream) {
    log[level](obj(), JSON.parse(msgJson) as string);
    return;
  }
  const line = `${ls}${time()}${l[SYM.chindingsSym] as string}${fields},"msg":${msgJson}${l[SYM.endSym] as string}`;
  if (stream[SYM.needsMetadataGsym] === true) stream.lastLevel = levelVal;
  stream.write(line);
}

/** A logger that drops everything (tests of pure functions, `-a check`). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Stop writing `file` (a test's private log): flushed, closed and no longer reopened or rotated. */
export function closeLogFile(file: string): void {
  const dest = openFiles.get(file);
  if (!dest) return;
  flushLogs();
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
  flushLogs();
  for (const [file, dest] of openFiles) {
    try {
      dest.reopen(file);
    } catch {
      // keep writing to the old descriptor rather than lose the process
    }
  }
}

/**
 * Rotation of the log files a process writes (lib/log.ts), besides SIGUSR1 reopen (logrotate's
 * way). From the conf's `log.rotate` section (every daemon's LogSection):
 *
 *   size  bytes: a file at or over it is rotated (checked every second)
 *   cron  a cron expression: every file is rotated then, whatever its size ("where size is not wanted")
 *   keep  rotated copies kept, `<file>.1` (newest) … `<file>.<keep>` (default 5)
 *
 * Rotating = rename `<file>.i` → `<file>.i+1` (the oldest is dropped), `<file>` → `<file>.1`, then
 * reopen `<file>`. Files are shared by several processes of a home (event.log; a USR2 handover),
 * so every process also reopens a file whose path no longer names the inode it writes (another
 * process rotated it): lines written in between land in `<file>.1`, none is lost. Two processes
 * rotating one file at the same moment can shift once more than needed; rotation never loses a
 * line, only moves it one copy further.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { ScheduledTask, TaskFn, TaskOptions } from 'node-cron';

/** node-cron's createTask, loaded when the first job is scheduled (every tool imports this file; few schedule). */
function createTask(expr: string, fn: TaskFn, opts: TaskOptions): ScheduledTask {
  const cron = createRequire(import.meta.url)('node-cron') as { createTask: (e: string, f: TaskFn, o: TaskOptions) => ScheduledTask };
  return cron.createTask(expr, fn, opts);
}

export interface LogRotation {
  size?: number;
  keep?: number;
  cron?: string;
}

export interface RotatableFile {
  readonly fd: number;
  reopen(file?: string): void;
}

export const DEFAULT_KEEP = 5;

/** Shift the copies of `file` and move it to `<file>.1`. */
export function shiftFiles(file: string, keep: number): void {
  const n = Math.max(1, keep);
  try {
    fs.rmSync(`${file}.${n}`, { force: true });
  } catch {
    // keep going
  }
  for (let i = n - 1; i >= 1; i--) {
    try {
      fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    } catch {
      // no such copy yet
    }
  }
  try {
    fs.renameSync(file, `${file}.1`);
  } catch {
    // already moved by another process
  }
}

/** Whether `file` (the path) still names the inode `fd` writes. */
function samePath(file: string, fd: number): { same: boolean; size: number } {
  try {
    const a = fs.fstatSync(fd);
    const b = fs.statSync(file);
    return { same: a.ino === b.ino && a.dev === b.dev, size: b.size };
  } catch {
    return { same: false, size: 0 };
  }
}

export class Rotator {
  readonly #files: ReadonlyMap<string, RotatableFile>;
  readonly #opts: LogRotation;
  #timer: NodeJS.Timeout | undefined;
  #task: ScheduledTask | undefined;
  /** Writes out lines a process holds in memory (lib/log.ts flushLogs), so they land in the file they were logged to. */
  readonly #flush: () => void;
  /** Rotations done by this process (tests, metrics). */
  rotations = 0;

  constructor(files: ReadonlyMap<string, RotatableFile>, opts: LogRotation, flush: () => void = () => undefined) {
    this.#files = files;
    this.#opts = opts;
    this.#flush = flush;
  }

  start(checkMs = 1000): void {
    this.stop();
    this.#timer = setInterval(() => this.check(), checkMs);
    this.#timer.unref();
    if (this.#opts.cron) {
      this.#task = createTask(this.#opts.cron, () => this.rotateAll(), { name: 'log rotation', unref: true, suppressMissedWarning: true });
      void this.#task.start();
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    void this.#task?.destroy();
    this.#task = undefined;
  }

  /** Reopen files rotated by another process; rotate the ones over `size`. */
  check(): void {
    this.#flush(); // held lines count towards the size
    for (const [file, dest] of this.#files) {
      const { same, size } = samePath(file, dest.fd);
      if (!same) this.#reopen(file, dest);
      else if (this.#opts.size && size >= this.#opts.size) this.rotate(file, dest);
    }
  }

  rotate(file: string, dest: RotatableFile): void {
    shiftFiles(file, this.#opts.keep ?? DEFAULT_KEEP);
    this.#reopen(file, dest);
    this.rotations++;
  }

  /** The cron rotation: every non-empty file (lines held in memory count: written out first). */
  rotateAll(): void {
    this.#flush();
    for (const [file, dest] of this.#files) {
      const { same, size } = samePath(file, dest.fd);
      if (!same) this.#reopen(file, dest);
      else if (size > 0) this.rotate(file, dest);
    }
  }

  /**
   * Every path to a new file ends here: the lines held in memory are written first, while each
   * descriptor still points at the file they were logged to (a rotated file is only renamed).
   */
  #reopen(file: string, dest: RotatableFile): void {
    try {
      this.#flush();
      dest.reopen(file);
    } catch {
      // keep writing to the old descriptor rather than lose the process
    }
  }
}

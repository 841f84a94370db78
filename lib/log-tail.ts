/**
 * `ibas|ibms|ibma -s logs [--follow] [--lines N] [--json]`: the last lines of a home's log files
 * of one daemon (its own logs and the home's event log), merged in time order and pretty-printed
 * with pino-pretty (colours on a terminal); `--json` prints the lines as they are (for jq). A line
 * that is in two of the files (a warn line is written to the daemon's log and to the event log) is
 * printed once.
 * `--follow` keeps printing new lines, like `tail -F`: a file that is rotated or truncated is read
 * again from its start, files that appear (a new worker's log) are picked up. Lines that are not
 * JSON (a crash backtrace in a worker's stderr) are printed as they are.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { IbpError } from './errors.js';

export interface TailOptions {
  /** The files to read, listed again at every poll (new files are followed). */
  files: () => string[];
  lines: number;
  follow: boolean;
  json: boolean;
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Ends a follow. */
  signal?: AbortSignal;
  pollMs?: number;
}

/** The log files of a folder whose names pass `keep` (sorted). */
export function logFilesIn(dir: string, keep: (name: string) => boolean): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => keep(f) && f.endsWith('.log')).sort().map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

const TAIL_BYTES = 4 * 1024 * 1024;

function lastLines(file: string, n: number): { lines: string[]; end: number; ino: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { lines: [], end: 0, ino: 0 };
  }
  try {
    const st = fs.fstatSync(fd);
    const start = Math.max(0, st.size - TAIL_BYTES);
    const buf = Buffer.alloc(st.size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    let text = buf.toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    const lines = text.split('\n').filter((l) => l.length > 0);
    return { lines: n > 0 ? lines.slice(-n) : [], end: st.size, ino: st.ino };
  } finally {
    fs.closeSync(fd);
  }
}

function timeOf(line: string): string {
  const m = /"time":"([^"]+)"/.exec(line);
  return m ? m[1]! : '';
}

export async function tailLogs(o: TailOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const { prettyFactory } = await import('pino-pretty'); // loaded only by this show: every other command starts without it
  const pretty = prettyFactory({ colorize: out.isTTY === true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'hostname', singleLine: true });
  const print = (line: string): void => {
    if (o.json) {
      out.write(`${line}\n`);
      return;
    }
    let text: string;
    try {
      text = line.startsWith('{') ? pretty(JSON.parse(line) as Record<string, unknown>) : `${line}\n`;
    } catch {
      text = `${line}\n`;
    }
    out.write(text);
  };
  // a warn line is in the daemon's own log AND in the event log, the same bytes: only the copy of
  // the file it was first seen in counts (a line repeated within one file counts each time)
  const seenIn = new LRUCache<string, string>({ max: 4096 });
  const firstCopy = (line: string, file: string): boolean => {
    const from = seenIn.get(line);
    if (from !== undefined && from !== file) return false;
    seenIn.set(line, file);
    return true;
  };
  const pos = new Map<string, { end: number; ino: number; rest: string }>();
  const merged: { time: string; line: string; file: string; order: number }[] = [];
  let order = 0;
  for (const f of o.files()) {
    const t = lastLines(f, o.lines);
    pos.set(f, { end: t.end, ino: t.ino, rest: '' });
    for (const line of t.lines) merged.push({ time: timeOf(line), line, file: f, order: order++ });
  }
  merged.sort((a, b) => (a.time === b.time ? a.order - b.order : a.time < b.time ? -1 : 1));
  const unique = merged.filter((m) => firstCopy(m.line, m.file));
  if (o.lines > 0) for (const m of unique.slice(-o.lines)) print(m.line);
  if (pos.size === 0 && !o.follow) {
    process.stderr.write('no log files yet\n');
    return 1;
  }
  if (!o.follow) return 0;
  const pollMs = o.pollMs ?? 250;
  while (!o.signal?.aborted) {
    // node's timer removes its abort listener when it fires: one per poll would pile up (and warn
    // MaxListenersExceededWarning after 10 polls); an abort ends the wait early (AbortError)
    await sleep(pollMs, undefined, { signal: o.signal }).catch(() => undefined);
    for (const f of o.files()) {
      let st: fs.Stats;
      try {
        st = fs.statSync(f);
      } catch {
        continue;
      }
      let p = pos.get(f);
      if (!p || p.ino !== st.ino || st.size < p.end) {
        p = { end: 0, ino: st.ino, rest: '' }; // new, rotated or truncated: from its start
        pos.set(f, p);
      }
      if (st.size === p.end) continue;
      const fd = fs.openSync(f, 'r');
      try {
        const buf = Buffer.alloc(Math.min(st.size - p.end, TAIL_BYTES));
        const n = fs.readSync(fd, buf, 0, buf.length, p.end);
        p.end += n;
        const text = p.rest + buf.subarray(0, n).toString('utf8');
        const lines = text.split('\n');
        p.rest = lines.pop() ?? '';
        for (const line of lines) if (line.length > 0 && firstCopy(line, f)) print(line);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  return 0;
}

/** The `-s logs` of a CLI: options parsed, Ctrl-C ends a follow with exit 0. */
export async function showLogs(files: () => string[], o: { follow?: boolean; lines?: string | number; json?: boolean }): Promise<number> {
  const lines = Number(o.lines ?? 50);
  if (!Number.isInteger(lines) || lines < 0 || lines > 1_000_000) throw new IbpError('IBP_ERR_CLI_BAD_ARG', { arg: '--lines', detail: `${String(o.lines)} is not a line count 0..1000000` });
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await tailLogs({ files, lines, follow: o.follow === true, json: o.json === true, signal: ac.signal });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

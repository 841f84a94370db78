/**
 * The coordinator log of two-phase commit (docs/ibac.md "Two-phase commit you can recover"): what
 * an ibac process decided, durable before any participant hears of it.
 *
 * Where: `<client home>/tlog/coord-<pid>-<start ms base36>.log`, one file per process (so no two
 * processes append to one file; recovery claims a dead process's file by renaming it, see
 * ibac/recovery.ts). Append-only, one record a line:
 *
 *   <sha256(json) first 16 hex> <json>\n
 *
 *   BEGIN     {t, gtrid, at, parts: [{node, app, host, journal}]}   before any prepare is sent
 *   DECISION  {t, gtrid, at, decision: COMMIT|ROLLBACK}            before any decision is sent
 *   ACK       {t, gtrid, at, i, outcome: OK|HEURISTIC}             participant i carried it out
 *   END       {t, gtrid, at}                                       every participant acknowledged
 *
 * Every record is written with one write(2) and fsync'ed before the step it guards. Reading stops
 * at the first line that is incomplete (no newline) or whose checksum does not match: a torn tail
 * left by a crash mid-write is detected and ignored (it guarded nothing: its fsync never returned).
 * Compaction rewrites the unfinished transactions to a temp file, fsyncs it and renames it over
 * the log (then fsyncs the folder); it runs in the owning process only (no concurrent appender).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../lib/errors.js';
import { fsyncDir } from '../lib/durable-file.js';

export type Decision = 'COMMIT' | 'ROLLBACK';

export interface Participant {
  node: string;
  app: string;
  /** "ip:port" of the host that got (or was to get) the prepare: decisions go there only. */
  host: string;
  journal: string;
}

export type CoordRecord =
  | { t: 'BEGIN'; gtrid: string; at: number; parts: Participant[] }
  | { t: 'DECISION'; gtrid: string; at: number; decision: Decision }
  | { t: 'ACK'; gtrid: string; at: number; i: number; outcome: 'OK' | 'HEURISTIC' }
  | { t: 'END'; gtrid: string; at: number };

/** One global transaction as the log tells it. */
export interface CoordTx {
  gtrid: string;
  begunAt: number;
  parts: Participant[];
  decision?: Decision;
  decidedAt?: number;
  /** Participant index → outcome acknowledged. */
  acked: Map<number, 'OK' | 'HEURISTIC'>;
  ended: boolean;
}

/** Rewrite the log when it has this many ended transactions in it. */
const COMPACT_AFTER = 256;

function sum(json: string): string {
  return crypto.createHash('sha256').update(json).digest('hex').slice(0, 16);
}

export function encodeRecord(r: CoordRecord): string {
  const json = JSON.stringify(r);
  return `${sum(json)} ${json}\n`;
}

export interface ReadResult {
  records: CoordRecord[];
  /** Bytes after the last good record (a torn or corrupt tail), ignored. */
  ignoredBytes: number;
}

/** The good records of a log's bytes, up to the first torn or corrupt line. */
export function decodeRecords(text: string): ReadResult {
  const records: CoordRecord[] = [];
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) break; // torn tail
    const line = text.slice(at, nl);
    const sp = line.indexOf(' ');
    const json = line.slice(sp + 1);
    if (sp !== 16 || sum(json) !== line.slice(0, 16)) break;
    try {
      records.push(JSON.parse(json) as CoordRecord);
    } catch {
      break;
    }
    at = nl + 1;
  }
  return { records, ignoredBytes: Buffer.byteLength(text.slice(at)) };
}

/** Fold records into transactions, in the order they began. */
export function foldRecords(records: readonly CoordRecord[]): Map<string, CoordTx> {
  const txs = new Map<string, CoordTx>();
  for (const r of records) {
    let tx = txs.get(r.gtrid);
    if (r.t === 'BEGIN') {
      tx = { gtrid: r.gtrid, begunAt: r.at, parts: r.parts, acked: new Map(), ended: false };
      txs.set(r.gtrid, tx);
      continue;
    }
    if (!tx) continue; // its BEGIN was compacted away with its END: nothing left to do
    if (r.t === 'DECISION' && tx.decision === undefined) {
      tx.decision = r.decision;
      tx.decidedAt = r.at;
    } else if (r.t === 'ACK') tx.acked.set(r.i, r.outcome);
    else if (r.t === 'END') tx.ended = true;
  }
  return txs;
}

export function readLog(file: string): ReadResult {
  return decodeRecords(fs.readFileSync(file, 'utf8'));
}

/** The records of one transaction that keep it alive in a rewritten log. */
export function recordsOf(tx: CoordTx): CoordRecord[] {
  const out: CoordRecord[] = [{ t: 'BEGIN', gtrid: tx.gtrid, at: tx.begunAt, parts: tx.parts }];
  if (tx.decision) out.push({ t: 'DECISION', gtrid: tx.gtrid, at: tx.decidedAt ?? tx.begunAt, decision: tx.decision });
  for (const [i, outcome] of tx.acked) out.push({ t: 'ACK', gtrid: tx.gtrid, at: tx.decidedAt ?? tx.begunAt, i, outcome });
  if (tx.ended) out.push({ t: 'END', gtrid: tx.gtrid, at: tx.decidedAt ?? tx.begunAt });
  return out;
}

/** Write `records` as a whole new log at `file` (temp + fsync + rename + fsync of the folder). */
export function rewriteLog(file: string, records: readonly CoordRecord[]): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, records.map(encodeRecord).join(''));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

export function coordinatorDir(homeRoot: string): string {
  return path.join(homeRoot, 'tlog');
}

const LOGS = new Map<string, CoordinatorLog>();

/** This process's coordinator log of a client home (created on the first record). */
export class CoordinatorLog {
  readonly dir: string;
  readonly file: string;
  /** Global transactions this process is running now (its own recovery leaves them alone). */
  readonly inFlight = new Set<string>();
  #fd: number | undefined;
  /** Transactions of this log (unfinished ones and those ended since the last compaction). */
  readonly #txs = new Map<string, CoordTx>();
  #ended = 0;

  /** The one log of this process for the client home at `homeRoot`. */
  static of(homeRoot: string): CoordinatorLog {
    let log = LOGS.get(homeRoot);
    if (!log) {
      log = new CoordinatorLog(homeRoot);
      LOGS.set(homeRoot, log);
    }
    return log;
  }

  private constructor(homeRoot: string) {
    this.dir = coordinatorDir(homeRoot);
    this.file = path.join(this.dir, `coord-${process.pid}-${Date.now().toString(36)}.log`);
  }

  #fail(e: unknown): never {
    throw new IbpError('IBP_ERR_TX_LOG', { file: this.file, detail: (e as Error).message });
  }

  #append(r: CoordRecord): void {
    try {
      if (this.#fd === undefined) {
        fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        this.#fd = fs.openSync(this.file, 'a', 0o600);
        fsyncDir(this.dir);
      }
      fs.writeSync(this.#fd, encodeRecord(r));
      fs.fdatasyncSync(this.#fd);
    } catch (e) {
      this.#fail(e);
    }
  }

  begin(gtrid: string, parts: Participant[]): void {
    const at = Date.now();
    this.#append({ t: 'BEGIN', gtrid, at, parts });
    this.#txs.set(gtrid, { gtrid, begunAt: at, parts, acked: new Map(), ended: false });
  }

  decide(gtrid: string, decision: Decision): void {
    const at = Date.now();
    this.#append({ t: 'DECISION', gtrid, at, decision });
    const tx = this.#txs.get(gtrid);
    if (tx) {
      tx.decision = decision;
      tx.decidedAt = at;
    }
  }

  ack(gtrid: string, i: number, outcome: 'OK' | 'HEURISTIC'): void {
    this.#append({ t: 'ACK', gtrid, at: Date.now(), i, outcome });
    this.#txs.get(gtrid)?.acked.set(i, outcome);
  }

  end(gtrid: string): void {
    this.#append({ t: 'END', gtrid, at: Date.now() });
    const tx = this.#txs.get(gtrid);
    if (tx) tx.ended = true;
    if (++this.#ended >= COMPACT_AFTER) this.compact();
  }

  /** A transaction of this log. */
  get(gtrid: string): CoordTx | undefined {
    return this.#txs.get(gtrid);
  }

  /** Unfinished transactions of this log (not ended). */
  unfinished(): CoordTx[] {
    return [...this.#txs.values()].filter((t) => !t.ended);
  }

  /** Rewrite the log with its unfinished transactions only. */
  compact(): void {
    if (this.#fd === undefined) return;
    const live = this.unfinished();
    try {
      rewriteLog(this.file, live.flatMap(recordsOf));
      fs.closeSync(this.#fd);
      this.#fd = fs.openSync(this.file, 'a', 0o600);
    } catch (e) {
      this.#fail(e);
    }
    for (const [g, tx] of this.#txs) if (tx.ended) this.#txs.delete(g);
    this.#ended = 0;
  }

  /** Close; the file goes when nothing in it is unfinished (else recovery finds it after this process). */
  close(): void {
    if (this.#fd === undefined) return;
    fs.closeSync(this.#fd);
    this.#fd = undefined;
    if (this.unfinished().length === 0) fs.rmSync(this.file, { force: true });
  }
}

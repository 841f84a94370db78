/**
 * Driving two-phase decisions to every participant, and coordinator recovery (docs/ibac.md
 * "Two-phase commit you can recover").
 *
 * {@link driveParticipant}: send the decision for a gtrid to one participant's host (the one that
 * got the prepare; a decision never goes to another host of the node) until it is carried out:
 * first on the transaction's own connection when there is one, then on new connections pinned to
 * that host, at the delays of {@link RETRY_SCHEDULE_MS}. OK (the participant did it, or had done
 * it already) or HEURISTIC (it was decided the other way there: an operator) end it; anything else
 * after the last try is a hazard (IBP_ERR_TX_HAZARD): the outcome there is unknown, the decision
 * stays logged and recovery goes on driving it.
 *
 * {@link recoverCoordinator}: the warm start. For every coordinator log of the client home whose
 * process is gone (its pid is not alive), claim it by renaming it (`….log.r<my pid>`: one
 * recoverer per file; a claim of a dead recoverer is taken over), read it (a torn tail ignored),
 * and for every transaction not ended: no decision logged → ROLLBACK is logged (presumed abort);
 * then the decision is driven to every participant not acknowledged. A file with everything ended
 * is removed; otherwise it is rewritten with what is left and released under its original name for
 * the next recovery. The process's own log is recovered too, except the transactions it is running.
 * Runs on environment creation (`createEnvironment`, in the background: `env.recovery`) and on
 * `ibpsend --recover`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorText, IbpError } from '../lib/errors.js';
import { isAlive } from '../lib/pidfile.js';
import { RC } from '../lib/protocol/result-codes.js';
import type { ControlAnswer, DecisionOptions, IbacConnection } from './connect.js';
import { CoordinatorLog, coordinatorDir, encodeRecord, foldRecords, readLog, recordsOf, rewriteLog, type CoordRecord, type CoordTx, type Decision, type Participant } from './coordinator-log.js';
import type { IbacEnv } from './env.js';
import { ServerError } from './errors.js';

/** Delays (ms) before each try of a decision to one participant: 6 tries over about 4 s. */
export const RETRY_SCHEDULE_MS: readonly number[] = [0, 50, 200, 500, 1000, 2000];

export interface DriveResult {
  index: number;
  part: Participant;
  /** OK: carried out; HEURISTIC: decided the other way there; HAZARD: unknown. */
  outcome: 'OK' | 'HEURISTIC' | 'HAZARD';
  answer?: ControlAnswer;
  error?: Error;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Send `decision` for `gtrid` to one participant until it is carried out or the schedule ends. */
export async function driveParticipant(env: IbacEnv, gtrid: string, decision: Decision, index: number, part: Participant,
  first?: IbacConnection, schedule: readonly number[] = RETRY_SCHEDULE_MS, wish?: DecisionOptions): Promise<DriveResult> {
  let last: unknown;
  for (let k = 0; k < schedule.length; k++) {
    if (schedule[k]! > 0) await sleep(schedule[k]!);
    if (env.destroyed) break;
    const useFirst = k === 0 && first !== undefined;
    let conn: IbacConnection | undefined = useFirst ? first : undefined;
    try {
      conn ??= await env.connect(part.node, part.app, { host: part.host });
      // sealed as `wish` says, else as the environment's sign/encrypt (recovery in a new process)
      const answer = await conn.sendDecision(decision === 'COMMIT', gtrid, part.journal, wish);
      return { index, part, outcome: 'OK', answer };
    } catch (e) {
      if (e instanceof ServerError && e.rc === RC.TX_HEURISTIC) return { index, part, outcome: 'HEURISTIC', error: e };
      last = e;
    } finally {
      if (!useFirst) conn?.disconnect();
    }
  }
  const hazard = new IbpError('IBP_ERR_TX_HAZARD', { gtrid, decision, node: part.node, host: part.host, detail: errorText(last ?? 'the environment was destroyed') });
  return { index, part, outcome: 'HAZARD', error: hazard };
}

/** Where a transaction's records go while it is driven. */
export interface TxSink {
  decide(gtrid: string, decision: Decision): void;
  ack(gtrid: string, i: number, outcome: 'OK' | 'HEURISTIC'): void;
  end(gtrid: string): void;
}

export interface RecoveredTx {
  gtrid: string;
  decision: Decision;
  /** No decision was logged: rolled back by presumed abort. */
  presumed: boolean;
  results: DriveResult[];
  finished: boolean;
}

export interface RecoveryReport {
  /** Coordinator logs of gone processes claimed (plus this process's own, when it had work). */
  files: number;
  transactions: RecoveredTx[];
  /** Transactions finished (every participant acknowledged). */
  finished: number;
  /** Transactions left for a later recovery (a participant unreachable). */
  left: number;
  /** Bytes of torn or corrupt tails ignored. */
  ignoredBytes: number;
  ms: number;
  errors: string[];
}

/** Drive one logged transaction to its decision (logging ROLLBACK first when none was logged). */
export async function finishTx(env: IbacEnv, tx: CoordTx, sink: TxSink, schedule: readonly number[] = RETRY_SCHEDULE_MS): Promise<RecoveredTx> {
  const presumed = tx.decision === undefined;
  const decision: Decision = tx.decision ?? 'ROLLBACK';
  if (presumed) sink.decide(tx.gtrid, decision);
  const todo = tx.parts.map((p, i) => [p, i] as const).filter(([, i]) => !tx.acked.has(i));
  const results = await Promise.all(todo.map(([p, i]) => driveParticipant(env, tx.gtrid, decision, i, p, undefined, schedule)));
  for (const r of results) {
    if (r.outcome !== 'HAZARD') {
      sink.ack(tx.gtrid, r.index, r.outcome);
      tx.acked.set(r.index, r.outcome);
    }
  }
  const finished = tx.acked.size === tx.parts.length;
  if (finished) {
    sink.end(tx.gtrid);
    tx.ended = true;
  }
  return { gtrid: tx.gtrid, decision, presumed, results, finished };
}

/** Appends to a claimed log of a gone process (each record fsync'ed). */
class ClaimedSink implements TxSink {
  constructor(readonly file: string) {}
  #append(r: CoordRecord): void {
    const fd = fs.openSync(this.file, 'a');
    try {
      fs.writeSync(fd, encodeRecord(r));
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  decide(gtrid: string, decision: Decision): void { this.#append({ t: 'DECISION', gtrid, at: Date.now(), decision }); }
  ack(gtrid: string, i: number, outcome: 'OK' | 'HEURISTIC'): void { this.#append({ t: 'ACK', gtrid, at: Date.now(), i, outcome }); }
  end(gtrid: string): void { this.#append({ t: 'END', gtrid, at: Date.now() }); }
}

const LOG_NAME = /^coord-(\d+)-([0-9a-z]+)\.log(?:\.r(\d+))?$/;

/** Recover every coordinator log of the env's client home (see the file comment). Never throws. */
export async function recoverCoordinator(env: IbacEnv, schedule: readonly number[] = RETRY_SCHEDULE_MS): Promise<RecoveryReport> {
  const t0 = performance.now();
  const report: RecoveryReport = { files: 0, transactions: [], finished: 0, left: 0, ignoredBytes: 0, ms: 0, errors: [] };
  const dir = coordinatorDir(env.home.root);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') report.errors.push(errorText(e));
  }
  const own = CoordinatorLog.of(env.home.root);
  for (const name of names) {
    const m = LOG_NAME.exec(name);
    if (!m) continue;
    const owner = Number(m[3] ?? m[1]);
    if (owner === process.pid || isAlive(owner)) continue;
    const base = `coord-${m[1]}-${m[2]}.log`;
    const claimed = path.join(dir, `${base}.r${process.pid}`);
    try {
      fs.renameSync(path.join(dir, name), claimed);
    } catch {
      continue; // claimed by another recoverer meanwhile
    }
    report.files++;
    try {
      const { records, ignoredBytes } = readLog(claimed);
      report.ignoredBytes += ignoredBytes;
      const txs = [...foldRecords(records).values()].filter((t) => !t.ended);
      const sink = new ClaimedSink(claimed);
      for (const tx of txs) report.transactions.push(await finishTx(env, tx, sink, schedule));
      const left = txs.filter((t) => !t.ended);
      if (left.length === 0) fs.rmSync(claimed, { force: true });
      else {
        rewriteLog(claimed, left.flatMap(recordsOf));
        fs.renameSync(claimed, path.join(dir, base)); // released for the next recovery
      }
    } catch (e) {
      report.errors.push(`${name}: ${errorText(e)}`);
    }
  }
  // this process's own unfinished transactions that nobody is running (a hazard earlier)
  const mine = own.unfinished().filter((t) => !own.inFlight.has(t.gtrid));
  if (mine.length > 0) report.files++;
  for (const tx of mine) {
    own.inFlight.add(tx.gtrid);
    try {
      report.transactions.push(await finishTx(env, tx, own, schedule));
    } catch (e) {
      report.errors.push(`${tx.gtrid}: ${errorText(e)}`);
    } finally {
      own.inFlight.delete(tx.gtrid);
    }
  }
  report.finished = report.transactions.filter((t) => t.finished).length;
  report.left = report.transactions.length - report.finished;
  report.ms = performance.now() - t0;
  return report;
}

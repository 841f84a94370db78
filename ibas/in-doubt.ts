/**
 * The participant side of two-phase commit you can recover (docs/ibas.md): what a worker does
 * with a branch of a global transaction — a leg: its gtrid and its journal (XA's branch
 * qualifier), several of which may run on one server — around the app's prepare / commit /
 * rollback, through the participant log (ibas/participant-log.ts).
 *
 *   prepare    the app's somain returned 0 → PREPARED is logged for the branch (fsync) → the yes
 *              vote is answered. A tombstone already there (the coordinator's recovery rolled the
 *              branch back while this prepare ran, or an operator the whole gtrid) → the app is
 *              rolled back, the vote is no (TX_ABORTED).
 *   decision   TX_CONTROL COMMIT/ROLLBACK naming the gtrid and journal, on any connection of any
 *              worker, before or after a restart: under the branch's lock, PREPARED → the app's
 *              socommit/sorollback (on the prepare's connection the worker's prepared state,
 *              elsewhere the app loaded afresh, ctx.gtrid telling which) → the outcome logged →
 *              answered with the app's rc and body. Decided already the same way → the same
 *              answer again; the other way → TX_HEURISTIC; never prepared: ROLLBACK leaves a
 *              tombstone and answers OK (presumed abort), COMMIT answers TX_UNKNOWN. An empty
 *              journal (the operator's `ibas -a commit_tx|abort_tx --gtrid`) decides every
 *              branch of the gtrid here.
 *   lost conn  the prepare's connection closes before the decision → nothing is rolled back (the
 *              participant voted yes: only the coordinator or an operator decides); the
 *              transaction stays in doubt in the log, listed by `ibas -s in_doubt`.
 *
 * An app whose socommit/sorollback fails (rc ≠ 0, crash) leaves the gtrid PREPARED: the next
 * decision retries it. So an app's commit/rollback must be repeatable for a gtrid (it may run again
 * after a crash between the app's work and the log write).
 */
import { errorText, IbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { crashPoint } from '../lib/crash-point.js';
import { RC } from '../lib/protocol/result-codes.js';
import type { WorkerState } from './scoreboard.js';
import { ParticipantLog, type ParticipantRecord } from './participant-log.js';
import type { PreparedTx, TransactionRunner, TxOutcome } from './transaction.js';

export type DecisionOp = 'COMMIT' | 'ROLLBACK';

export class InDoubt {
  readonly log: ParticipantLog;
  readonly #runner: TransactionRunner;
  readonly #logger: Logger;

  constructor(homeRoot: string, runner: TransactionRunner, logger: Logger) {
    this.log = new ParticipantLog(homeRoot);
    this.#runner = runner;
    this.#logger = logger;
    try {
      this.log.compact();
    } catch (e) {
      logger.warn({ err: errorText(e) }, `participant log not compacted , dir[${this.log.dir}] reason[${errorText(e)}]`);
    }
  }

  /**
   * After the app's prepare of a gtrid transaction: log PREPARED before the vote is answered.
   * Returns the outcome to answer (the app's own when it voted yes and the log has it).
   */
  afterPrepare(tx: PreparedTx, outcome: TxOutcome, after: WorkerState): TxOutcome {
    const gtrid = tx.input.gtrid ?? '';
    const rec: ParticipantRecord = {
      gtrid, state: 'PREPARED', app: tx.app, journal: tx.journal, clientNode: tx.input.clientNode, clientIp: tx.input.clientIp, preparedAt: Date.now(),
    };
    let refusal: IbpError;
    let created = false;
    try {
      if (this.log.create(rec)) {
        created = true;
        // an operator's abort of the whole gtrid (empty journal) before this branch was logged: no
        if (tx.journal === '' || this.log.get(gtrid, '')?.state !== 'ROLLED_BACK') return outcome;
        refusal = new IbpError('IBP_ERR_TX_ABORTED', { gtrid });
      } else {
        const there = this.log.get(gtrid, tx.journal);
        refusal = there?.state === 'ROLLED_BACK'
          ? new IbpError('IBP_ERR_TX_ABORTED', { gtrid })
          : new IbpError('IBP_ERR_TX_GTRID', { gtrid, detail: `its branch with journal ${tx.journal} was prepared here already (${there?.state ?? 'unreadable'})` });
      }
    } catch (e) {
      refusal = e instanceof IbpError ? e : new IbpError('IBP_ERR_TX_LOG', { file: this.log.dir, detail: errorText(e) });
    }
    const undo = this.#runner.decide(tx, false, after);
    if (created) {
      try {
        this.log.update({ ...rec, state: 'ROLLED_BACK', decidedAt: Date.now(), by: 'presumed-abort', appRc: undo.appRc, body: undo.body.toString('base64') });
      } catch (e) {
        this.#logger.warn({ gtrid, journal: tx.journal }, `two-phase branch left PREPARED after its undo , gtrid[${gtrid}] journal[${tx.journal}] reason[${errorText(e)}]`);
      }
    }
    this.#logger.warn({ gtrid, journal: tx.journal, app: tx.app }, `two-phase prepare undone , gtrid[${gtrid}] journal[${tx.journal}] app[${tx.app}] rollback_rc[${undo.rc}] reason[${refusal.message}]`);
    return this.#runner.refused(refusal);
  }

  /**
   * A decision for a branch (TX_CONTROL naming its gtrid and journal). `held` is the prepared
   * state of this connection when the decision came on the prepare's own connection. An empty
   * journal is an operator's (`ibas -a commit_tx|abort_tx`): every branch of the gtrid here is
   * decided ({@link decideAll}).
   */
  decide(op: DecisionOp, gtrid: string, journal: string, held: PreparedTx | undefined, after: WorkerState): TxOutcome {
    if (journal === '') {
      held?.loaded.release();
      return this.decideAll(op, gtrid, after);
    }
    try {
      return this.log.withLock(gtrid, journal, () => this.#decideLocked(op, gtrid, journal, 'coordinator', held, after));
    } catch (e) {
      if (held) held.loaded.release();
      return this.#runner.refused(e);
    }
  }

  /**
   * The operator's decision of a gtrid: each of its branches here, one after the other under its
   * own lock. One branch: its answer as it is; several: OK when every one is, else the first
   * failure, the message naming each branch's result (the operator's command reads each branch's
   * outcome back from the log). No branch: COMMIT is TX_UNKNOWN, ROLLBACK leaves a tombstone for
   * the empty journal (every branch: a prepare of the gtrid still running votes no).
   */
  decideAll(op: DecisionOp, gtrid: string, after: WorkerState): TxOutcome {
    let branches: ParticipantRecord[];
    try {
      branches = this.log.branches(gtrid);
    } catch (e) {
      return this.#runner.refused(e);
    }
    const journals = branches.map((b) => b.journal);
    if (journals.length === 0) journals.push('');
    const results = journals.map((j) => {
      try {
        return { journal: j, outcome: this.log.withLock(gtrid, j, () => this.#decideLocked(op, gtrid, j, 'operator', undefined, after)) };
      } catch (e) {
        return { journal: j, outcome: this.#runner.refused(e) };
      }
    });
    if (results.length === 1) return results[0]!.outcome;
    const failed = results.find((r) => r.outcome.rc !== RC.OK);
    const message = results.map((r) => `journal[${r.journal}] rc[${r.outcome.rc}] app_rc[${r.outcome.appRc}]${r.outcome.message ? ` ${r.outcome.message}` : ''}`).join(' ; ');
    return failed
      ? { ...failed.outcome, message }
      : { rc: RC.OK, appRc: 0, message, body: Buffer.alloc(0), files: [], appUs: 0 };
  }

  #decideLocked(op: DecisionOp, gtrid: string, journal: string, by: 'coordinator' | 'operator', held: PreparedTx | undefined, after: WorkerState): TxOutcome {
    let rec = this.log.get(gtrid, journal);
    if (!rec) {
      if (op === 'COMMIT') throw new IbpError('IBP_ERR_TX_UNKNOWN', { gtrid, op });
      const tomb: ParticipantRecord = { gtrid, state: 'ROLLED_BACK', app: '', journal, clientNode: '', clientIp: '', preparedAt: Date.now(), decidedAt: Date.now(), by: 'presumed-abort', appRc: 0 };
      if (this.log.create(tomb)) {
        this.#logger.info({ gtrid, journal }, `two-phase rollback of a branch never prepared here (presumed abort) , gtrid[${gtrid}] journal[${journal}]`);
        return { rc: RC.OK, appRc: 0, message: '', body: Buffer.alloc(0), files: [], appUs: 0 };
      }
      rec = this.log.get(gtrid, journal);
      if (!rec) throw new IbpError('IBP_ERR_TX_LOG', { file: this.log.dir, detail: `the record of ${gtrid} journal ${journal} vanished` });
    }
    const wanted = op === 'COMMIT' ? 'COMMITTED' : 'ROLLED_BACK';
    if (rec.state !== 'PREPARED') {
      held?.loaded.release();
      if (rec.state !== wanted) throw new IbpError('IBP_ERR_TX_HEURISTIC', { gtrid, state: rec.state.toLowerCase().replace('_', ' '), by: rec.by ?? '?', op });
      return { rc: RC.OK, appRc: rec.appRc ?? 0, message: '', body: Buffer.from(rec.body ?? '', 'base64'), files: [], appUs: 0 };
    }
    const outcome = held
      ? this.#runner.decide(held, op === 'COMMIT', after)
      : this.#runner.decideLogged({ app: rec.app, journal: rec.journal, gtrid, clientNode: rec.clientNode, clientIp: rec.clientIp }, op === 'COMMIT', after);
    if (outcome.rc === RC.OK) {
      this.log.update({ ...rec, state: wanted, decidedAt: Date.now(), by, appRc: outcome.appRc, body: outcome.body.toString('base64') });
      if (op === 'COMMIT') crashPoint('participant_after_commit');
    }
    this.#logger.info({ gtrid, journal: rec.journal, app: rec.app, rc: outcome.rc, by }, `two-phase ${op.toLowerCase()} , gtrid[${gtrid}] journal[${rec.journal}] app[${rec.app}] rc[${outcome.rc}] by[${by}]${held ? '' : ' from[participant log]'}${outcome.rc === RC.OK ? '' : ' , still in doubt'}`);
    return outcome;
  }

  /** The prepare's connection closed before the decision: the transaction stays in doubt. */
  abandon(tx: PreparedTx): void {
    tx.loaded.release();
    this.#logger.warn({ gtrid: tx.input.gtrid, journal: tx.journal, app: tx.app }, `two-phase in doubt: connection closed before the decision , gtrid[${tx.input.gtrid}] journal[${tx.journal}] app[${tx.app}] , the coordinator's recovery or \`ibas -a commit_tx|abort_tx --gtrid\` decides`);
  }
}

/**
 * Parallel transactions and two-phase commit (IBP §2.4.8 / §2.4.9):
 *
 *   const multi = await env.multiConnect([{ node: 'N1', app, request }, { node: 'N2', … }]);
 *   const results = await multi.multiSendRequestsAndReceiveResponses();   // all at once, wait for all
 *   multi.multiDisconnect();
 *
 * Each item reports its own outcome: ok with the response, or the error with its phase (SAFE,
 * SUSPICIOUS, ANSWERED) — one failing node never hides the others' results. `multi.suspicious`
 * says whether any of them needs verifying.
 *
 * Every packet of a multi-transaction carries its global transaction id (`multi.gtrid`, lib/gtrid.ts;
 * a new one for each prepare round), visible to the apps as ctx.gtrid and in the servers' logs.
 *
 * Two-phase commit on top (docs/ibac.md "Two-phase commit you can recover"): sending with
 * `{ prepare: true }` first logs BEGIN with the participants in this process's coordinator log
 * (ibac/coordinator-log.ts, fsync), then each app prepares and its server logs the yes vote;
 * `multiSendCommitOrRollbackAndReceiveResponses(commit)` logs the DECISION (fsync) before sending
 * it, then drives every participant to it (ibac/recovery.ts: the same connection first, then new
 * ones to the same host, with retries). A participant whose outcome stays unknown is reported as
 * IBP_ERR_TX_HAZARD, never as success, and recovery finishes it later. {@link twoPhaseCommit} does
 * the whole round. `multiDisconnect()` with a round prepared and undecided logs ROLLBACK and
 * drives it in the background (`multi.settled`).
 */
import { COMM_STATUS, type CommStatus } from '../lib/protocol/comm-status.js';
import { IbpError, errorText } from '../lib/errors.js';
import type { ControlAnswer, DecisionOptions, IbacConnection, IbacResponse, SendOptions } from './connect.js';
import type { IbacEnv } from './env.js';
import { IbacError, PHASE, UsageError, type Phase } from './errors.js';
import type { RequestFile } from './files.js';
import { crashPoint } from '../lib/crash-point.js';
import { newGtrid } from '../lib/gtrid.js';
import { CoordinatorLog, type Decision, type Participant } from './coordinator-log.js';
import { driveParticipant, RETRY_SCHEDULE_MS, type DriveResult } from './recovery.js';

export interface MultiRequest {
  node: string;
  app: string;
  request: Buffer | string;
  files?: readonly RequestFile[];
  /** Default: generated. */
  journal?: string;
  /** Pin a host ("ip:port"). */
  host?: string;
  timeoutMs?: number;
}

export interface MultiResult<T = IbacResponse> {
  node: string;
  app: string;
  ok: boolean;
  /** OK, or the phase of the failure. */
  phase: 'OK' | Phase;
  commStatus: CommStatus;
  host?: string;
  journal?: string;
  response?: T;
  error?: IbacError | IbpError | Error;
}

interface Item {
  req: MultiRequest;
  conn?: IbacConnection;
  connectError?: unknown;
  journal?: string;
  prepared: boolean;
}

function failed<T>(item: Item, e: unknown, host?: string): MultiResult<T> {
  const err = e instanceof Error ? e : new Error(String(e));
  const phase: Phase = err instanceof IbacError ? err.phase : PHASE.SAFE;
  const commStatus = err instanceof IbacError ? err.commStatus : COMM_STATUS.BEFORE_SEND;
  return { node: item.req.node, app: item.req.app, ok: false, phase, commStatus, host: host ?? item.conn?.host, journal: item.journal, error: err };
}

/** A prepare round logged in the coordinator log and not decided yet. */
interface Round {
  gtrid: string;
  /** Items in the BEGIN record, in its participant order. */
  items: Item[];
  parts: Participant[];
  /** How the prepares were protected: the decisions are sealed the same way (docs/security.md). */
  wish: DecisionOptions;
}

export class IbacMulti {
  readonly #env: IbacEnv;
  readonly #items: Item[];
  #last: MultiResult<unknown>[] = [];
  #gtrid: string;
  #round: Round | undefined;
  #background: Promise<unknown> = Promise.resolve();

  /** @internal use env.multiConnect */
  constructor(env: IbacEnv, items: Item[]) {
    this.#env = env;
    this.#items = items;
    this.#gtrid = newGtrid(env.thisNode);
  }

  /** The global transaction id every packet of this multi-transaction carries now. */
  get gtrid(): string {
    return this.#gtrid;
  }

  /** Resolves when decisions driven in the background (by multiDisconnect) are done. */
  get settled(): Promise<unknown> {
    return this.#background;
  }

  /** Connect every item at once (IBP's IBACMultiConnect); failures are kept per item. */
  static async connect(env: IbacEnv, requests: readonly MultiRequest[]): Promise<IbacMulti> {
    if (requests.length === 0) throw new UsageError('multiConnect needs at least one request');
    const items: Item[] = requests.map((req) => ({ req, prepared: false }));
    await Promise.all(items.map(async (it) => {
      try {
        it.conn = await env.connect(it.req.node, it.req.app, it.req.host ? { host: it.req.host } : {});
      } catch (e) {
        it.connectError = e;
      }
    }));
    return new IbacMulti(env, items);
  }

  /** Per item: connected or the connect failure. */
  get connectResults(): MultiResult<undefined>[] {
    return this.#items.map((it) => (it.conn
      ? { node: it.req.node, app: it.req.app, ok: true, phase: 'OK', commStatus: COMM_STATUS.BEFORE_SEND, host: it.conn.host }
      : failed(it, it.connectError)));
  }

  /** The worst communication status of the last round (IBP's IBACMultiGetCommStatus). */
  get commStatus(): CommStatus {
    const order: CommStatus[] = [COMM_STATUS.BEFORE_SEND, COMM_STATUS.AFTER_SEND, COMM_STATUS.ON_SENDING];
    let worst: CommStatus = COMM_STATUS.BEFORE_SEND;
    for (const r of this.#last) if (!r.ok && order.indexOf(r.commStatus) > order.indexOf(worst)) worst = r.commStatus;
    return worst;
  }

  /** True when any item of the last round is suspicious. */
  get suspicious(): boolean {
    return this.#last.some((r) => r.phase === PHASE.SUSPICIOUS);
  }

  /**
   * Send every request at once and wait for every answer (IBP's
   * IBACMultiSendRequestsAndReceiveResponses). Never rejects for a single item's failure.
   */
  async multiSendRequestsAndReceiveResponses(opts: Pick<SendOptions, 'prepare' | 'sign' | 'encrypt'> = {}): Promise<MultiResult[]> {
    if (opts.prepare) this.#begin({ sign: opts.sign, encrypt: opts.encrypt });
    const gtrid = this.#gtrid;
    const results = await Promise.all(this.#items.map(async (it): Promise<MultiResult> => {
      if (!it.conn) return failed(it, it.connectError);
      try {
        const journal = opts.prepare ? it.journal : it.req.journal;
        const r = await it.conn.sendRequestAndReceiveResponse(it.req.app, it.req.request, it.req.files, { ...opts, gtrid, journal, timeoutMs: it.req.timeoutMs });
        it.journal = r.journal;
        it.prepared = opts.prepare === true;
        return { node: it.req.node, app: it.req.app, ok: true, phase: 'OK', commStatus: r.commStatus, host: r.host, journal: r.journal, response: r };
      } catch (e) {
        it.journal = e instanceof IbacError ? e.journal : it.journal;
        it.prepared = false;
        return failed(it, e);
      }
    }));
    this.#last = results;
    return results;
  }

  /** A prepare round: a new gtrid, journals fixed, BEGIN logged (fsync) before any prepare leaves. */
  #begin(wish: DecisionOptions): void {
    if (this.#round) throw new UsageError(`global transaction ${this.#round.gtrid} is prepared and not decided: commit or roll it back first`);
    this.#gtrid = newGtrid(this.#env.thisNode);
    const items = this.#items.filter((it) => it.conn);
    for (const it of items) it.journal = it.req.journal ?? this.#env.nextJournal();
    const parts = items.map((it) => ({ node: it.req.node, app: it.req.app, host: it.conn!.host, journal: it.journal! }));
    const log = CoordinatorLog.of(this.#env.home.root);
    log.inFlight.add(this.#gtrid);
    if (parts.length > 0) log.begin(this.#gtrid, parts);
    this.#round = { gtrid: this.#gtrid, items, parts, wish };
    crashPoint('coordinator_before_prepare');
  }

  /**
   * Commit (true) or roll back (false) the global transaction of the last prepare round (IBP's
   * IBACMultiSendCommitOrRollbackAndReceiveResponses): the decision is logged first, then driven
   * to every participant of the round, retried until carried out. Per item: ok with the app's
   * answer (body, rc), the item's earlier failure when it did not prepare (it is still told a
   * rollback), IBP_ERR_TX_HAZARD when its outcome is unknown, IBP_ERR_TX_HEURISTIC when it was
   * decided the other way there.
   */
  async multiSendCommitOrRollbackAndReceiveResponses(commit: boolean): Promise<MultiResult<ControlAnswer>[]> {
    const previous = this.#last as MultiResult[];
    const round = this.#round;
    if (!round) {
      const results = this.#items.map((it, i) => failed<ControlAnswer>(it, it.conn ? previous[i]?.error ?? new UsageError(`nothing prepared for ${it.req.node}`) : it.connectError, previous[i]?.host));
      this.#last = results;
      return results;
    }
    if (commit && round.items.some((it) => !it.prepared)) throw new UsageError(`global transaction ${round.gtrid}: not every participant prepared, it can only be rolled back`);
    const driven = await this.#decide(round, commit ? 'COMMIT' : 'ROLLBACK', true);
    const results = this.#items.map((it, i): MultiResult<ControlAnswer> => {
      const k = round.items.indexOf(it);
      const d = k >= 0 ? driven[k] : undefined;
      const before = previous[i];
      if (!d) return failed(it, it.conn ? before?.error ?? new UsageError(`nothing prepared for ${it.req.node}`) : it.connectError, before?.host);
      const wasPrepared = it.prepared;
      it.prepared = false;
      if (d.outcome !== 'OK') return failed(it, d.error, d.part.host);
      if (!wasPrepared) return failed(it, before?.error ?? new UsageError(`nothing prepared for ${it.req.node}`), before?.host);
      const a = d.answer!;
      return { node: it.req.node, app: it.req.app, ok: true, phase: 'OK', commStatus: COMM_STATUS.AFTER_SEND, host: a.host, journal: a.journal, response: a };
    });
    this.#last = results;
    return results;
  }

  /** Log the decision (fsync), then drive it to every participant of the round. */
  async #decide(round: Round, decision: Decision, useConnections: boolean): Promise<DriveResult[]> {
    this.#round = undefined;
    const log = CoordinatorLog.of(this.#env.home.root);
    try {
      if (round.parts.length === 0) return [];
      log.decide(round.gtrid, decision);
      crashPoint('coordinator_after_log');
      const drive = (k: number) => driveParticipant(this.#env, round.gtrid, decision, k, round.parts[k]!, useConnections ? round.items[k]!.conn : undefined, RETRY_SCHEDULE_MS, round.wish);
      const first = await drive(0);
      crashPoint('coordinator_mid_commit');
      const driven = [first, ...await Promise.all(round.parts.slice(1).map((_, k) => drive(k + 1)))];
      for (const d of driven) if (d.outcome !== 'HAZARD') log.ack(round.gtrid, d.index, d.outcome);
      if (driven.every((d) => d.outcome !== 'HAZARD')) log.end(round.gtrid);
      return driven;
    } finally {
      log.inFlight.delete(round.gtrid);
    }
  }

  /**
   * Close every connection (IBP's IBACMultiDisconnect). A prepare round not decided is rolled back:
   * ROLLBACK is logged now and driven in the background on new connections (`settled`).
   */
  multiDisconnect(): void {
    const round = this.#round;
    for (const it of this.#items) it.conn?.disconnect();
    if (round) {
      this.#round = undefined;
      this.#background = this.#decide(round, 'ROLLBACK', false).catch(() => undefined);
    }
  }
}

export interface TwoPhaseResult {
  /** The global transaction id (in every server's log and the coordinator log). */
  gtrid: string;
  /** True when every participant prepared and committed. */
  committed: boolean;
  /**
   * True when the outcome of some participant is unknown (IBP_ERR_TX_HAZARD) or differs
   * (IBP_ERR_TX_HEURISTIC): see its `decide` item. The logged decision stands; recovery goes on.
   */
  hazard: boolean;
  /** The decision taken after the prepare round. */
  decision: 'COMMIT' | 'ROLLBACK';
  prepare: MultiResult[];
  /** Answers to the decision (only participants that prepared are asked). */
  decide: MultiResult<ControlAnswer>[];
  /** True when any participant is in doubt (prepare or decision suspicious). */
  suspicious: boolean;
}

/**
 * Two-phase commit across nodes: connect all, send with prepare, commit if every participant
 * prepared, otherwise roll back those that did; disconnect. Per-participant outcomes are returned.
 */
export async function twoPhaseCommit(env: IbacEnv, requests: readonly MultiRequest[]): Promise<TwoPhaseResult> {
  const multi = await IbacMulti.connect(env, requests);
  try {
    const prepare = await multi.multiSendRequestsAndReceiveResponses({ prepare: true });
    crashPoint('coordinator_after_votes');
    const prepareSuspicious = multi.suspicious;
    const all = prepare.every((r) => r.ok);
    const decide = await multi.multiSendCommitOrRollbackAndReceiveResponses(all);
    const committed = all && decide.every((r) => r.ok);
    const hazard = decide.some((r) => r.error instanceof IbpError && (r.error.code === 'IBP_ERR_TX_HAZARD' || r.error.code === 'IBP_ERR_TX_HEURISTIC'));
    return { gtrid: multi.gtrid, committed, hazard, decision: all ? 'COMMIT' : 'ROLLBACK', prepare, decide, suspicious: prepareSuspicious || multi.suspicious };
  } finally {
    multi.multiDisconnect();
  }
}

/** For logs: "N1 OK 127.1.2.3:18001 | N2 SAFE …". */
export function describeResults(results: readonly MultiResult<unknown>[]): string {
  return results.map((r) => `${r.node} ${r.phase}${r.host ? ` ${r.host}` : ''}${r.error ? ` ${errorText(r.error)}` : ''}`).join(' | ');
}

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
 * Two-phase commit on top: send with `{ prepare: true }` (each app prepares in its transaction and
 * keeps it pending on its connection), then `multiSendCommitOrRollbackAndReceiveResponses(commit)`
 * decides on the same connections. {@link twoPhaseCommit} does the whole round: commit when every
 * participant prepared, roll back the prepared ones otherwise. A server whose connection goes
 * before the decision rolls back by itself.
 */
import { COMM_STATUS, type CommStatus } from '../lib/protocol/comm-status.js';
import { IbpError, errorText } from '../lib/errors.js';
import type { ControlAnswer, IbacConnection, IbacResponse, SendOptions } from './connect.js';
import type { IbacEnv } from './env.js';
import { IbacError, PHASE, UsageError, type Phase } from './errors.js';
import type { RequestFile } from './files.js';

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

export class IbacMulti {
  readonly #items: Item[];
  #last: MultiResult<unknown>[] = [];

  /** @internal use env.multiConnect */
  constructor(items: Item[]) {
    this.#items = items;
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
    return new IbacMulti(items);
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
    const results = await Promise.all(this.#items.map(async (it): Promise<MultiResult> => {
      if (!it.conn) return failed(it, it.connectError);
      try {
        const r = await it.conn.sendRequestAndReceiveResponse(it.req.app, it.req.request, it.req.files, { ...opts, journal: it.req.journal, timeoutMs: it.req.timeoutMs });
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

  /**
   * Commit (true) or roll back (false) every transaction prepared in the last round, on the same
   * connections (IBP's IBACMultiSendCommitOrRollbackAndReceiveResponses). Items that did not
   * prepare are reported as failed with their earlier error.
   */
  async multiSendCommitOrRollbackAndReceiveResponses(commit: boolean): Promise<MultiResult<ControlAnswer>[]> {
    const previous = this.#last as MultiResult[];
    const results = await Promise.all(this.#items.map(async (it, i): Promise<MultiResult<ControlAnswer>> => {
      if (!it.conn) return failed(it, it.connectError);
      if (!it.prepared || it.journal === undefined) {
        const before = previous[i];
        return failed(it, before?.error ?? new UsageError(`nothing prepared for ${it.req.node}`), before?.host);
      }
      try {
        const a = await it.conn.sendCommitOrRollback(commit, it.journal);
        it.prepared = false;
        return { node: it.req.node, app: it.req.app, ok: true, phase: 'OK', commStatus: COMM_STATUS.AFTER_SEND, host: a.host, journal: a.journal, response: a };
      } catch (e) {
        it.prepared = false;
        return failed(it, e);
      }
    }));
    this.#last = results;
    return results;
  }

  /** Close every connection (IBP's IBACMultiDisconnect). Undecided prepared transactions are rolled back by their servers. */
  multiDisconnect(): void {
    for (const it of this.#items) it.conn?.disconnect();
  }
}

export interface TwoPhaseResult {
  /** True when every participant prepared and committed. */
  committed: boolean;
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
    const prepareSuspicious = multi.suspicious;
    const all = prepare.every((r) => r.ok);
    const decide = await multi.multiSendCommitOrRollbackAndReceiveResponses(all);
    const committed = all && decide.every((r) => r.ok);
    return { committed, decision: all ? 'COMMIT' : 'ROLLBACK', prepare, decide, suspicious: prepareSuspicious || multi.suspicious };
  } finally {
    multi.multiDisconnect();
  }
}

/** For logs: "N1 OK 127.1.2.3:18001 | N2 SAFE …". */
export function describeResults(results: readonly MultiResult<unknown>[]): string {
  return results.map((r) => `${r.node} ${r.phase}${r.host ? ` ${r.host}` : ''}${r.error ? ` ${errorText(r.error)}` : ''}`).join(' | ');
}

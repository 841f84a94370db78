/**
 * One transaction inside a worker, whatever adapter brought it (binary protocol or HTTP):
 * resolve the app, lay the request files out in the worker's file folder, call somain, collect
 * the response files, and turn every failure into a wire result code. The scoreboard slot says
 * WORKING with the app and start time while it runs (for `-s bbdetail` and the manager's timeout
 * tiers).
 *
 * Send-ahead (issues 15/16): when the session passes `onSendAhead`, an app that sends its response
 * ahead (ctx.sendAhead / rsp_send_ahead) has it answered right then: the runner first tells the
 * guard that the answer left (a tier-1 timeout or a crash from now on writes nothing), then hands
 * the session the complete early outcome, which the session sends and flushes at once. The app
 * goes on; its final result is only logged (the outcome says `sentAhead`; a failure after the
 * send-ahead is an error line in the worker log, never a second answer).
 *
 * Files: the worker's folder `$IBP_HOME/file/ibas_w<n>/` holds the files of the running
 * transaction only; it is emptied before and after each transaction (one transaction at a time
 * per worker, so no two transactions share it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { IbpError, errorText, isIbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { AppView } from '../lib/shm/config-space.js';
import { RC, resultOf } from '../lib/protocol/result-codes.js';
import type { AppResolver } from './app-resolver.js';
import type { LoadedApp } from './app-cache.js';
import type { SlotWriter, WorkerState } from './scoreboard.js';

export interface TxFile {
  name: string;
  data: Buffer;
}

export interface TxInput {
  app: string;
  clientNode: string;
  clientIp: string;
  clientPort: number;
  journal: string;
  request: Buffer;
  files: TxFile[];
  /** Two-phase commit: somain prepares, a later commit/rollback decides. */
  prepare?: boolean;
  /** The global transaction id of a multi-transaction ('' or undefined: none). */
  gtrid?: string;
  /**
   * The session's early answer: called (synchronously, while the app still runs) with the complete
   * outcome the app sent ahead; the session must send it to the client before returning.
   */
  onSendAhead?: (early: TxOutcome) => void;
  /**
   * The app's config as this transaction's pre-request found it (AppResolver.lookup followed the
   * newest config segment then): the transaction runs with the view its pre-answer was given on,
   * and the lookup is not repeated. Absent: looked up here.
   */
  view?: AppView;
}

export interface TxOutcome {
  rc: number;
  appRc: number;
  message: string;
  body: Buffer;
  files: TxFile[];
  appUs: number;
  /** The answer already left by send-ahead: this outcome is for the transaction log only. */
  sentAhead?: boolean;
}

/**
 * Tier 1 of the three-tier timeouts (issue 5) hooks in here: armed with the app's timeout2 right
 * before somain, disarmed right after.
 */
export interface TxGuard {
  arm(app: string, timeout2Ms: number): void;
  disarm(): void;
  /** The answer left (send-ahead) while armed: a timeout or crash from now on must not answer again. */
  answered?(): void;
}

/** A transaction prepared by somain, waiting for the client's commit or rollback. */
export interface PreparedTx {
  app: string;
  journal: string;
  loaded: LoadedApp;
  input: TxInput;
  view: AppView;
}

export class TransactionRunner {
  readonly fileDir: string;
  readonly #resolver: AppResolver;
  readonly #slot: SlotWriter;
  readonly #log: Logger;
  readonly #guard: TxGuard | undefined;
  /** comm.max_files_bytes: response files over this in total are refused before they are read. */
  readonly #maxFilesBytes: number;
  /** The file folder may hold files (cleared lazily: most transactions carry none). */
  #dirty = true;

  constructor(resolver: AppResolver, slot: SlotWriter, fileDir: string, log: Logger, guard?: TxGuard, maxFilesBytes = Number.MAX_SAFE_INTEGER) {
    this.#maxFilesBytes = maxFilesBytes;
    this.#resolver = resolver;
    this.#slot = slot;
    this.fileDir = fileDir;
    this.#log = log;
    this.#guard = guard;
    fs.mkdirSync(fileDir, { recursive: true });
  }

  /** For the pre-answer: is the app there and valid? Throws APP_UNKNOWN / APP_INVALID / POOL_NO_SPACE. */
  check(app: string): AppView {
    return this.#resolver.lookup(app);
  }

  /** Answer for a transaction that never reached the app (pre-request rejected, bad input). */
  refused(e: unknown): TxOutcome {
    return { rc: resultOf(e), appRc: 0, message: errorText(e).replace(/^IBP_ERR_\w+: /, ''), body: Buffer.alloc(0), files: [], appUs: 0 };
  }

  /** A transaction rejected at its pre-request ends: count it on the slot like any other. */
  countRejected(app: string, after: WorkerState): void {
    this.#slot.txBegin(app, 0);
    this.#slot.txEnd(false, after);
  }

  /**
   * Run the transaction. Never throws for a failure of the app or of the input: the outcome
   * carries the result code. `after` is the slot state once done (KEEPALIVE on a long connection).
   */
  run(input: TxInput, after: WorkerState, prepared?: (p: PreparedTx) => void): TxOutcome {
    let view: AppView;
    try {
      view = input.view ?? this.#resolver.lookup(input.app);
    } catch (e) {
      this.#slot.txBegin(input.app, 0);
      this.#slot.txEnd(false, after);
      return this.refused(e);
    }
    const timeout2Ms = Math.round(view.timeout2 * 1000);
    this.#slot.txBegin(input.app, timeout2Ms);
    let outcome: TxOutcome;
    const ahead: { early?: TxOutcome } = {};
    try {
      outcome = this.#call(view, input, timeout2Ms, ahead, prepared);
    } catch (e) {
      if (!isIbpError(e)) this.#log.error({ err: errorText(e), stack: (e as Error)?.stack }, `transaction failed inside the server , app[${input.app}] reason[${errorText(e)}]`);
      outcome = this.refused(e);
    } finally {
      if (this.#dirty) this.#clearFiles();
    }
    if (ahead.early) {
      outcome.sentAhead = true;
      if (outcome.rc !== RC.OK) {
        this.#log.error({ app: input.app, journal: input.journal, rc: outcome.rc, appRc: outcome.appRc }, `transaction failed after its response was sent ahead , journal[${input.journal}] app[${input.app}] rc[${outcome.rc}] app_rc[${outcome.appRc}] reason[${outcome.message}] , the client has the early response: reconcile`);
      }
    }
    this.#slot.txEnd(outcome.rc === RC.OK, after);
    return outcome;
  }

  #call(view: AppView, input: TxInput, timeout2Ms: number, ahead: { early?: TxOutcome }, prepared?: (p: PreparedTx) => void): TxOutcome {
    const loaded = this.#resolver.load(view);
    if (this.#dirty) this.#clearFiles();
    const names: string[] = [];
    const seen = new Set<string>();
    for (const f of input.files) {
      if (seen.has(f.name)) throw new IbpError('IBP_ERR_APP_FILE', { app: input.app, name: f.name, detail: 'the same name twice in one transaction' });
      seen.add(f.name);
      this.#dirty = true;
      fs.writeFileSync(path.join(this.fileDir, f.name), f.data);
      names.push(f.name);
    }
    const t0 = process.hrtime.bigint();
    const ctx = {
      app: input.app,
      clientNode: input.clientNode,
      clientIp: input.clientIp,
      clientPort: input.clientPort,
      journal: input.journal,
      gtrid: input.gtrid ?? '',
      timeoutMs: Math.round(view.timeout * 1000),
      timeout2Ms,
      onSendAhead: input.onSendAhead ? (response: Buffer, files: string[]) => this.#sendAhead(input, response, files, t0, ahead) : undefined,
    };
    this.#guard?.arm(input.app, timeout2Ms);
    let result;
    try {
      result = loaded.call(ctx, input.request, names, { prepare: input.prepare === true });
    } finally {
      this.#guard?.disarm();
    }
    const appUs = Number((process.hrtime.bigint() - t0) / 1000n);
    if (result.files.length > 0) this.#dirty = true;
    // sent ahead: the files left with the early answer, they are not read again
    const files = ahead.early ? ahead.early.files : this.#responseFiles(input.app, result.files);
    if (input.prepare && result.rc === 0) prepared?.({ app: input.app, journal: input.journal, loaded, input: { ...input, files: [], request: Buffer.alloc(0), onSendAhead: undefined, view: undefined }, view });
    if (result.rc !== 0) {
      return { rc: RC.APP_FAILED, appRc: result.rc, message: new IbpError('IBP_ERR_APP_FAILED', { app: input.app, rc: result.rc }).message, body: result.response, files, appUs };
    }
    return { rc: RC.OK, appRc: 0, message: '', body: result.response, files, appUs };
  }

  /** The response files the app named, read from the file folder (comm.max_files_bytes in total). */
  #responseFiles(app: string, names: readonly string[]): TxFile[] {
    if (names.length > 0) this.#dirty = true;
    let total = 0;
    for (const name of names) {
      try {
        total += fs.statSync(path.join(this.fileDir, name)).size;
      } catch {
        // missing: readFileSync below says which
      }
    }
    if (total > this.#maxFilesBytes) throw new IbpError('IBP_ERR_APP_FILE', { app, name: names.join(','), detail: `the response files hold ${total} bytes, over comm.max_files_bytes ${this.#maxFilesBytes}` });
    return names.map((name) => ({ name, data: fs.readFileSync(path.join(this.fileDir, name)) }));
  }

  /**
   * The app sent its response ahead (inside its call): answer now. Response files that cannot be
   * read leave nothing early: the normal end answers (with the file error) as without the hook.
   */
  #sendAhead(input: TxInput, response: Buffer, names: string[], t0: bigint, ahead: { early?: TxOutcome }): void {
    if (ahead.early || !input.onSendAhead) return;
    let files: TxFile[];
    try {
      files = this.#responseFiles(input.app, names);
    } catch (e) {
      this.#log.warn({ app: input.app, err: errorText(e) }, `send-ahead not sent , app[${input.app}] reason[${errorText(e)}] , the answer waits for the end of the call`);
      return;
    }
    const early: TxOutcome = { rc: RC.OK, appRc: 0, message: '', body: response, files, appUs: Number((process.hrtime.bigint() - t0) / 1000n), sentAhead: true };
    ahead.early = early;
    this.#guard?.answered?.();
    input.onSendAhead(early);
  }

  /** Two-phase commit decision for a prepared transaction (TX_CONTROL). */
  decide(p: PreparedTx, commit: boolean, after: WorkerState): TxOutcome {
    this.#slot.txBegin(p.app, Math.round(p.view.timeout2 * 1000));
    let outcome: TxOutcome;
    try {
      const ctx = { app: p.app, clientNode: p.input.clientNode, clientIp: p.input.clientIp, clientPort: p.input.clientPort, journal: p.journal, gtrid: p.input.gtrid ?? '' };
      const t0 = process.hrtime.bigint();
      this.#guard?.arm(p.app, Math.round(p.view.timeout2 * 1000));
      let r;
      try {
        r = commit ? p.loaded.commit(ctx) : p.loaded.rollback(ctx);
      } finally {
        this.#guard?.disarm();
      }
      const appUs = Number((process.hrtime.bigint() - t0) / 1000n);
      outcome = r.rc === 0
        ? { rc: RC.OK, appRc: 0, message: '', body: r.response, files: [], appUs }
        : { rc: RC.APP_FAILED, appRc: r.rc, message: new IbpError('IBP_ERR_APP_FAILED', { app: p.app, rc: r.rc }).message, body: r.response, files: [], appUs };
    } catch (e) {
      outcome = this.refused(e);
    }
    this.#slot.txEnd(outcome.rc === RC.OK, after);
    return outcome;
  }

  /**
   * Two-phase decision for a transaction prepared earlier by any worker, maybe before a restart
   * (the participant log, ibas/in-doubt.ts): the app is resolved and loaded afresh and its
   * socommit/sorollback called with the gtrid.
   */
  decideLogged(input: Pick<TxInput, 'app' | 'journal' | 'gtrid' | 'clientNode' | 'clientIp'>, commit: boolean, after: WorkerState): TxOutcome {
    let view: AppView;
    let loaded: LoadedApp;
    try {
      view = this.#resolver.lookup(input.app);
      loaded = this.#resolver.load(view);
    } catch (e) {
      return this.refused(e);
    }
    const full: TxInput = { ...input, clientPort: 0, request: Buffer.alloc(0), files: [] };
    return this.decide({ app: input.app, journal: input.journal, loaded, input: full, view }, commit, after);
  }

  #clearFiles(): void {
    this.#dirty = false;
    let names: string[];
    try {
      names = fs.readdirSync(this.fileDir);
    } catch {
      fs.mkdirSync(this.fileDir, { recursive: true });
      return;
    }
    for (const n of names) fs.rmSync(path.join(this.fileDir, n), { recursive: true, force: true });
  }
}

/**
 * The errors of the client library: IbpError subclasses that name how far the transaction got when
 * it failed (undici's idea of typed errors, IBP's IBACGetCommStatus):
 *
 *   phase       commStatus     meaning                                        what the caller does
 *   SAFE        BEFORE_SEND    nothing of the REQUEST left this side: no host, retry (elsewhere, later)
 *                              connect failed, pre-request rejected, file push
 *                              failed, connection lost before the request
 *   SUSPICIOUS  ON_SENDING     the REQUEST was being or had been sent and no   verify, reverse or
 *               AFTER_SEND     complete RESPONSE came back: the app may have  escalate (never blind
 *                              run                                             retry)
 *   ANSWERED    AFTER_SEND     the server answered completely with a failure   read rc / appRc
 *                              (app returned non-zero, app timeout or crash
 *                              reported by the server, …)
 *
 * `error.code` is a code of the one table (lib/errors.ts): IBP_ERR_CLIENT_SAFE / _SUSPICIOUS /
 * _CONNECT / _NO_HOST for failures of the exchange, the server's own code (IBP_ERR_APP_FAILED, …)
 * for answered failures.
 */
import { IbpError, type ErrorCode, type ErrorParams } from '../lib/errors.js';
import { COMM_STATUS, type CommStatus } from '../lib/protocol/comm-status.js';
import { errorCodeOf, resultName } from '../lib/protocol/result-codes.js';

/**
 * How far a failed transaction got.
 * @enum
 */
export const PHASE = {
  /** Before the request left: the app did not run. Safe to retry. */
  SAFE: 'SAFE',
  /** The request was (being) sent, no complete response: the app may have run. */
  SUSPICIOUS: 'SUSPICIOUS',
  /** The server answered completely, with a failure result. */
  ANSWERED: 'ANSWERED',
} as const;
export type Phase = (typeof PHASE)[keyof typeof PHASE];

/** What a transaction failure is about (for logs and for the retry decision). */
export interface FailureContext {
  node?: string;
  app?: string;
  /** "ip:port" of the host used (or tried). */
  host?: string;
  journal?: string;
}

/** The base of every ibac error. */
export class IbacError extends IbpError {
  readonly phase: Phase;
  readonly commStatus: CommStatus;
  readonly node: string | undefined;
  readonly app: string | undefined;
  readonly host: string | undefined;
  readonly journal: string | undefined;

  constructor(code: ErrorCode, params: ErrorParams, phase: Phase, commStatus: CommStatus, ctx: FailureContext, options?: { cause?: unknown }) {
    super(code, params, options);
    this.name = new.target.name;
    this.phase = phase;
    this.commStatus = commStatus;
    this.node = ctx.node;
    this.app = ctx.app;
    this.host = ctx.host;
    this.journal = ctx.journal;
  }

  /** True when the app may have run and nobody knows its outcome: verify, reverse or escalate. */
  get suspicious(): boolean {
    return this.phase === PHASE.SUSPICIOUS;
  }

  /** True when the app certainly did not run. */
  get safe(): boolean {
    return this.phase === PHASE.SAFE;
  }
}

/** Bad arguments (too many files, a refused name, a closed environment): nothing was sent. */
export class UsageError extends IbacError {
  constructor(detail: string, ctx: FailureContext = {}, code: ErrorCode = 'IBP_ERR_CLIENT_USAGE', params?: ErrorParams) {
    super(code, params ?? { detail }, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx);
  }
}

/** Signing or encryption asked: refused before anything is sent (never silently skipped). */
export class NotSupportedError extends IbacError {
  constructor(feature: string, ctx: FailureContext = {}) {
    super('IBP_ERR_CLIENT_NOT_SUPPORTED', { feature }, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx);
  }
}

/**
 * Signing or encryption could not be had (no key of this node or of the server node, or the server
 * did not grant what this client requires): the request was not sent, the app did not run.
 */
export class ProtectionError extends IbacError {
  constructor(code: 'IBP_ERR_TX_NO_KEY' | 'IBP_ERR_TX_NOT_GRANTED', params: ErrorParams, ctx: FailureContext) {
    super(code, params, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx);
  }
}

/** The node is unknown or invalid in the client's config space, or it has no usable host. */
export class NoHostError extends IbacError {
  constructor(code: 'IBP_ERR_CLIENT_NO_HOST' | 'IBP_ERR_CLIENT_NODE_UNKNOWN' | 'IBP_ERR_CLIENT_NODE_INVALID', params: ErrorParams, ctx: FailureContext) {
    super(code, params, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx);
  }
}

/** Every host tried refused the connection or did not accept it within connecting_timeout. */
export class ConnectError extends IbacError {
  /** One line per host tried: "ip:port: reason". */
  readonly attempts: readonly string[];
  constructor(attempts: readonly string[], ctx: FailureContext, options?: { cause?: unknown }) {
    super('IBP_ERR_CLIENT_CONNECT', { host: ctx.host ?? '?', detail: attempts.join('; ') }, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx, options);
    this.attempts = attempts;
  }
}

/** Why an exchange broke off. */
export type BreakReason = 'timeout' | 'closed' | 'reset' | 'protocol' | 'server-error' | 'destroyed';

/** The exchange broke off before any byte of the REQUEST was written. */
export class SafeError extends IbacError {
  readonly reason: BreakReason;
  /** The server's result code when it sent an ERROR packet. */
  readonly rc: number | undefined;
  constructor(reason: BreakReason, detail: string, ctx: FailureContext, rc?: number, options?: { cause?: unknown }) {
    super('IBP_ERR_CLIENT_SAFE', { detail }, PHASE.SAFE, COMM_STATUS.BEFORE_SEND, ctx, options);
    this.reason = reason;
    this.rc = rc;
  }
}

/** The exchange broke off while or after the REQUEST was sent, without a complete RESPONSE. */
export class SuspiciousError extends IbacError {
  readonly reason: BreakReason;
  readonly rc: number | undefined;
  constructor(reason: BreakReason, detail: string, commStatus: CommStatus, ctx: FailureContext, rc?: number, options?: { cause?: unknown }) {
    super('IBP_ERR_CLIENT_SUSPICIOUS', { host: ctx.host ?? '?', detail: `${detail}; comm status ${commStatus}` }, PHASE.SUSPICIOUS, commStatus, ctx, options);
    this.reason = reason;
    this.rc = rc;
  }
}

/** What the server said with a non-zero result. */
export interface ServerAnswer {
  rc: number;
  appRc: number;
  message: string;
  body: Buffer;
}

/**
 * The server answered with a non-zero result: at the pre-request (phase SAFE: the app did not
 * run — unknown or invalid app, server stopping, …) or in the RESPONSE (phase ANSWERED: app
 * returned non-zero, timed out or crashed, as the server reports it). The code is the server's.
 */
export class ServerError extends IbacError {
  readonly rc: number;
  readonly appRc: number;
  /** The response bytes the server sent with the failure (an app may explain itself there). */
  readonly body: Buffer;
  constructor(answer: ServerAnswer, atPreRequest: boolean, ctx: FailureContext) {
    const code = errorCodeOf(answer.rc) ?? 'IBP_ERR_POOL_INTERNAL';
    super(code, { detail: answer.message || resultName(answer.rc), app: ctx.app, rc: answer.appRc, node: ctx.node },
      atPreRequest ? PHASE.SAFE : PHASE.ANSWERED, atPreRequest ? COMM_STATUS.BEFORE_SEND : COMM_STATUS.AFTER_SEND, ctx);
    if (answer.message) Object.defineProperty(this, 'message', { value: `${answer.message} (${ctx.host ?? '?'}: ${resultName(answer.rc)})`, enumerable: false, writable: true, configurable: true });
    this.rc = answer.rc;
    this.appRc = answer.appRc;
    this.body = answer.body;
  }
}

/** A one-line summary of any failure for people: status, phase and message. */
export function describeFailure(e: unknown): string {
  if (e instanceof IbacError) {
    const what = e.phase === PHASE.SUSPICIOUS ? 'SUSPICIOUS (verify, reverse or escalate)' : e.phase === PHASE.SAFE ? 'SAFE (the app did not run; retry)' : 'ANSWERED (the server reported the failure)';
    return `${e.code} ${what} comm status ${e.commStatus}: ${e.message}`;
  }
  if (e instanceof IbpError) return `${e.code}: ${e.message}`;
  return (e as Error)?.message ?? String(e);
}

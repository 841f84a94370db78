/**
 * Result codes on the wire. Every PRE_ANSWER, RESPONSE, TX_CONTROL_ANSWER and ERROR packet carries
 * one as an int32. 0 is success; the others map one-to-one onto IbpError codes of lib/errors.ts so
 * that a client can rethrow what the server meant, and a server can answer what it caught.
 *
 * Ranges: 1xxx app, 2xxx protocol, 3xxx server/pool, 4xxx two-phase commit of global
 * transactions (docs/ibas.md). A code never changes meaning once released.
 */
import { IbpError, type ErrorCode, type ErrorParams } from '../errors.js';

/** @enum */
export const RC = {
  OK: 0,
  /** The app is not in this node's config space. */
  APP_UNKNOWN: 1001,
  /** The app is configured but marked invalid. */
  APP_INVALID: 1002,
  /** The app's .so is missing or cannot be loaded (bad file, no somain). */
  APP_LOAD: 1003,
  /** The app ran and returned non-zero (its own return code travels in `appRc`). */
  APP_FAILED: 1004,
  /** The app ran past its server timeout (timeout2); the detail names the tier that ended it. */
  APP_TIMEOUT: 1005,
  /** The app crashed its worker (a signal). */
  APP_CRASH: 1006,
  /** The app named a response file that is not there, or a request file name was refused. */
  APP_FILE: 1007,
  /** Two-phase commit asked of an app without socommit/sorollback. */
  APP_NO_2PC: 1008,
  /** The app is suspended on this server (it crashed its workers too often): nothing ran, safe to retry elsewhere. */
  APP_SUSPENDED: 1009,
  /** The app's package does not match the signed sha256 of the config space (and no good version is loaded). */
  APP_TAMPERED: 1010,
  /** A JavaScript app threw (or returned something that is not a result code). */
  APP_THREW: 1011,
  /** A malformed packet (bad field, bad file name, wrong count). */
  PROTO_FRAME: 2001,
  /** A frame or file over the limit. */
  PROTO_TOO_LARGE: 2002,
  /** A protocol version this side does not speak. */
  PROTO_VERSION: 2003,
  /** A packet out of order (e.g. REQUEST before PRE_REQUEST). */
  PROTO_SEQUENCE: 2004,
  /** The pre-request asked for something the server does not grant (e.g. encryption). */
  PROTO_REFUSED: 2005,
  /** The connection was idle longer than the server keeps it. */
  PROTO_IDLE: 2006,
  /** The peer stopped inside a frame. */
  PROTO_TRUNCATED: 2007,
  /** A phase of the connection (header, request, keep-alive, send) ran past its deadline. */
  PROTO_DEADLINE: 2008,
  /** An lz4-compressed packet where compression was not granted. */
  PROTO_NOT_GRANTED: 2009,
  /** The server requires signed (or encrypted) transactions and this one was not: nothing ran. */
  TX_UNPROTECTED: 2010,
  /** The client node has no published key on the server: nothing ran. */
  TX_UNKNOWN_NODE: 2011,
  /** The pre-request is signed with a key that is not one of the client node's: nothing ran. */
  TX_FOREIGN_KEY: 2012,
  /** The client signed with a key past its disable time: nothing ran. */
  TX_KEY_EXPIRED: 2013,
  /** A signature or authentication tag did not match (a flipped bit, a forgery). */
  TX_TAMPERED: 2014,
  /** A packet (or a whole pre-request) seen before. */
  TX_REPLAY: 2015,
  /** A sealed packet with a sequence ahead of the one due. */
  TX_OUT_OF_ORDER: 2016,
  /** The server has no usable key for what was asked (its own key unknown or disabled). */
  TX_NO_KEY: 2017,
  /** A sealed packet where signing was not granted. */
  TX_NOT_GRANTED: 2018,
  /** The server is stopping: retry elsewhere. Nothing ran. */
  POOL_STOPPING: 3001,
  /** The server has no config space to resolve apps. */
  POOL_NO_SPACE: 3002,
  /** Not implemented by this server yet (e.g. two-phase commit control). */
  NOT_SUPPORTED: 3003,
  /** Anything else that went wrong inside the server. */
  POOL_INTERNAL: 3999,
  /** Two-phase commit: the participant already decided this gtrid the other way (operator, heuristic). */
  TX_HEURISTIC: 4001,
  /** Two-phase commit: COMMIT for a gtrid this participant never prepared. */
  TX_UNKNOWN: 4002,
  /** Two-phase commit: another process of the server is deciding this gtrid now: retry. */
  TX_BUSY: 4003,
  /** Two-phase commit: the gtrid was already rolled back here (presumed abort); the prepare is undone. */
  TX_ABORTED: 4004,
  /** Two-phase commit: the participant log could not be written (nothing was voted or decided). */
  TX_LOG: 4005,
  /** Two-phase commit: a malformed global transaction id. */
  TX_GTRID: 4006,
} as const;
export type ResultCode = (typeof RC)[keyof typeof RC];

const TO_ERROR: Record<Exclude<ResultCode, 0>, ErrorCode> = {
  [RC.APP_UNKNOWN]: 'IBP_ERR_APP_UNKNOWN',
  [RC.APP_INVALID]: 'IBP_ERR_APP_INVALID',
  [RC.APP_LOAD]: 'IBP_ERR_APP_LOAD',
  [RC.APP_FAILED]: 'IBP_ERR_APP_FAILED',
  [RC.APP_TIMEOUT]: 'IBP_ERR_APP_TIMEOUT',
  [RC.APP_CRASH]: 'IBP_ERR_APP_CRASH',
  [RC.APP_FILE]: 'IBP_ERR_APP_FILE',
  [RC.APP_NO_2PC]: 'IBP_ERR_APP_NO_2PC',
  [RC.APP_SUSPENDED]: 'IBP_ERR_APP_SUSPENDED',
  [RC.APP_TAMPERED]: 'IBP_ERR_APP_TAMPERED',
  [RC.APP_THREW]: 'IBP_ERR_APP_THREW',
  [RC.PROTO_FRAME]: 'IBP_ERR_PROTO_FRAME',
  [RC.PROTO_TOO_LARGE]: 'IBP_ERR_PROTO_TOO_LARGE',
  [RC.PROTO_VERSION]: 'IBP_ERR_PROTO_VERSION',
  [RC.PROTO_SEQUENCE]: 'IBP_ERR_PROTO_SEQUENCE',
  [RC.PROTO_REFUSED]: 'IBP_ERR_PROTO_REFUSED',
  [RC.PROTO_IDLE]: 'IBP_ERR_PROTO_IDLE',
  [RC.PROTO_TRUNCATED]: 'IBP_ERR_PROTO_TRUNCATED',
  [RC.PROTO_DEADLINE]: 'IBP_ERR_PROTO_DEADLINE',
  [RC.PROTO_NOT_GRANTED]: 'IBP_ERR_PROTO_NOT_GRANTED',
  [RC.TX_UNPROTECTED]: 'IBP_ERR_TX_UNPROTECTED',
  [RC.TX_UNKNOWN_NODE]: 'IBP_ERR_TX_UNKNOWN_NODE',
  [RC.TX_FOREIGN_KEY]: 'IBP_ERR_TX_FOREIGN_KEY',
  [RC.TX_KEY_EXPIRED]: 'IBP_ERR_TX_KEY_EXPIRED',
  [RC.TX_TAMPERED]: 'IBP_ERR_TX_TAMPERED',
  [RC.TX_REPLAY]: 'IBP_ERR_TX_REPLAY',
  [RC.TX_OUT_OF_ORDER]: 'IBP_ERR_TX_OUT_OF_ORDER',
  [RC.TX_NO_KEY]: 'IBP_ERR_TX_NO_KEY',
  [RC.TX_NOT_GRANTED]: 'IBP_ERR_TX_NOT_GRANTED',
  [RC.POOL_STOPPING]: 'IBP_ERR_POOL_STOPPING',
  [RC.POOL_NO_SPACE]: 'IBP_ERR_POOL_NO_SPACE',
  [RC.NOT_SUPPORTED]: 'IBP_ERR_CLIENT_NOT_SUPPORTED',
  [RC.POOL_INTERNAL]: 'IBP_ERR_POOL_INTERNAL',
  [RC.TX_HEURISTIC]: 'IBP_ERR_TX_HEURISTIC',
  [RC.TX_UNKNOWN]: 'IBP_ERR_TX_UNKNOWN',
  [RC.TX_BUSY]: 'IBP_ERR_TX_BUSY',
  [RC.TX_ABORTED]: 'IBP_ERR_TX_ABORTED',
  [RC.TX_LOG]: 'IBP_ERR_TX_LOG',
  [RC.TX_GTRID]: 'IBP_ERR_TX_GTRID',
};

const FROM_ERROR = new Map<ErrorCode, ResultCode>(Object.entries(TO_ERROR).map(([rc, code]) => [code, Number(rc) as ResultCode]));
const NAMES = new Map<number, string>(Object.entries(RC).map(([k, v]) => [v, k]));

export function isResultCode(n: number): n is ResultCode {
  return NAMES.has(n);
}

/** "APP_UNKNOWN", or "rc 4711" for a code this build does not know. */
export function resultName(rc: number): string {
  return NAMES.get(rc) ?? `rc ${rc}`;
}

/** The IbpError code of a wire result code (undefined for OK or an unknown number). */
export function errorCodeOf(rc: number): ErrorCode | undefined {
  return isResultCode(rc) && rc !== RC.OK ? TO_ERROR[rc] : undefined;
}

/** The wire result code for an error caught on the server (POOL_INTERNAL when not an IbpError of the table). */
export function resultOf(e: unknown): ResultCode {
  if (e instanceof IbpError) return FROM_ERROR.get(e.code) ?? RC.POOL_INTERNAL;
  return RC.POOL_INTERNAL;
}

/**
 * The IbpError a client raises for a non-zero result: same code as the server's, the server's
 * message as detail. Unknown numbers become IBP_ERR_POOL_INTERNAL naming the number.
 */
export function errorOfResult(rc: number, message: string, params: ErrorParams = {}): IbpError {
  const code = errorCodeOf(rc) ?? 'IBP_ERR_POOL_INTERNAL';
  const e = new IbpError(code, { detail: message, ...params });
  // the server's own text is the better message: it had every parameter
  if (message) Object.defineProperty(e, 'message', { value: message, enumerable: false, writable: true, configurable: true });
  return e;
}

/**
 * What a protocol session is to the connection driver (ibas/connection.ts): a sans-IO state
 * machine of one connection, fed with the bytes received, producing the bytes to send. It runs
 * the transactions itself (synchronously, in order, as their requests complete) through the
 * worker's TransactionRunner. ibas/session-binary.ts and ibas/session-http.ts implement it.
 */
import type { InDoubt } from './in-doubt.js';
import type { Logger } from '../lib/log.js';
import type { FrameLimits } from '../lib/protocol/frame.js';
import type { Load } from '../lib/protocol/codec.js';
import type { TxGate } from '../lib/protocol/tx-security.js';
import type { Peer } from './conn-io.js';
import type { InputState, Phase } from './deadlines.js';
import type { TransactionRunner } from './transaction.js';
import type { TxLog } from './tx-log.js';

/** What every session of a worker shares. */
export interface ConnectionContext {
  runner: TransactionRunner;
  limits: FrameLimits;
  /** comm.max_files_bytes: attached-file bytes per transaction per direction. */
  maxFilesBytes: number;
  log: Logger;
  txLog: TxLog;
  /** The server's load for every answer. */
  load(): Load;
  /** Flags this server grants (ibas.conf security). */
  grantable: number;
  /** Signing and encryption of transactions (ibas.conf security.sign_flag / encrypt_flag); absent: none granted. */
  gate?: TxGate;
  /** Bodies at least this long are compressed when COMPRESS was granted. */
  compressMin(): number;
  /** The worker must go (stop, recycle): answers say so, the connection closes between transactions. */
  mustClose(): boolean;
  /** comm.keepalive_max_requests: HTTP requests one keep-alive connection may carry (0: no limit). */
  keepaliveMaxRequests: number;
  /** Count a failure outside a transaction (protocol error, deadline) on the slot. */
  countError(): void;
  /** Two-phase commit of global transactions: the participant log (ibas/in-doubt.ts). */
  inDoubt: InDoubt;
}

/**
 * The driver's synchronous send (send-ahead): called by a session from inside push() — while an
 * app still runs — to hand everything in `out` to the kernel right now, blocking (poll) while the
 * peer's window is full, up to comm.send_timeout. Only sends: `afterSend` work waits for the
 * normal flush after push() returns. False: the connection is over (broken, or the send
 * deadline expired; the session is closing then).
 */
export type FlushNow = () => boolean;

export interface Session {
  /** Answers not yet handed to the kernel, in order. The driver empties it. */
  readonly out: Buffer[];
  /** Run after the answers queued so far are sent (transaction log lines with their send time). */
  readonly afterSend: (() => void)[];
  /** Close once `out` is sent (protocol error, Connection: close, worker leaving). */
  readonly closing: boolean;
  /** Messages (transactions, keep-alives, 2PC controls) completed on this connection. */
  readonly completed: number;
  /** Where the input stands (for the read deadline). */
  input(): InputState;
  /** Bytes from the peer (any fragmentation). */
  push(chunk: Buffer): void;
  /** The peer ended its side (or the connection broke): `how` for the log. */
  end(how: string): void;
  /** The worker leaves between transactions: queue the protocol's last word (if any) and close. */
  leave(reason: string): void;
  /** A deadline expired in `phase`: queue the protocol's best-effort answer and close. */
  expire(phase: Phase, ms: number, answerInFlight: boolean): void;
  /** The connection is gone: undo what must not outlive it (prepared 2PC transactions). */
  closed(): void;
}

export type { Peer };

/**
 * The binary protocol adapter: serves one connection (docs/ARCHITECTURE.md §6.3) until the client
 * closes it, it idles out, or the worker must go (stop, recycle) — then between transactions.
 *
 *   IDLE ──PRE_REQUEST──▶ FILES (n > 0) ──PUSH_FILE × n──▶ REQUEST ──REQUEST──▶ run ──▶ IDLE
 *   IDLE ──KEEPALIVE──▶ KEEPALIVE_ACK        IDLE ──TX_CONTROL──▶ commit/rollback ──▶ IDLE
 *
 * A rejected pre-request (unknown/invalid app, no config space, flags refused) is answered at
 * once and its files and request are still read and dropped, so pipelining clients stay in step;
 * the RESPONSE repeats the rejection. Any malformed, oversized or out-of-order packet: ERROR
 * packet, a warn line in the worker log, the connection is closed, the worker goes on.
 *
 * Frames are handled synchronously as they arrive (the app call is synchronous anyway), in order.
 */
import type net from 'node:net';
import { IbpError, errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { FrameReader, type FrameLimits } from '../lib/protocol/frame.js';
import { decodePacket, encodePacket, TX_FLAG, type Load, type Packet, type PreRequest } from '../lib/protocol/codec.js';
import { RC, resultOf } from '../lib/protocol/result-codes.js';
import type { TransactionRunner, TxFile, TxOutcome, PreparedTx } from './transaction.js';
import type { TxLog } from './tx-log.js';

export interface ConnectionContext {
  runner: TransactionRunner;
  limits: FrameLimits;
  log: Logger;
  txLog: TxLog;
  /** The server's load for every answer. */
  load(): Load;
  /** Flags this server grants (ibas.conf security). */
  grantable: number;
  /** Bodies at least this long are compressed when COMPRESS was granted. */
  compressMin(): number;
  idleTimeoutMs: number;
  /** The worker must go: close between transactions. */
  mustClose(): boolean;
  /** Count a failure outside a transaction (protocol error) on the slot. */
  countError(): void;
  /**
   * Told where to find the answers written but not yet sent (held by cork while a chunk is
   * handled): a worker dying inside the app (tier 1, crash) sends them before its last answer.
   */
  onPending?(pending: (() => Buffer | undefined) | undefined): void;
}

/** A connection being served; `done` settles when the socket is closed. */
export interface ServedConnection {
  done: Promise<void>;
  /** Close now if between transactions, else right after the running one. */
  requestClose(reason: string): void;
}

interface TxState { kind: 'FILES' | 'REQUEST'; pre: PreRequest; files: TxFile[]; rejected?: TxOutcome; granted: number; startNs: bigint }
type State = { kind: 'IDLE' } | TxState;

function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function serveBinary(socket: net.Socket, first: Buffer, ctx: ConnectionContext): ServedConnection {
  const reader = new FrameReader(ctx.limits.maxFrame);
  const peer = { ip: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  const prepared = new Map<string, PreparedTx>();
  let state: State = { kind: 'IDLE' };
  let closing = false;
  let closeAfterTx: string | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  /** Frames written while the socket is corked (sent at uncork). */
  const corked: Buffer[] = [];
  let inChunk = false;
  ctx.onPending?.(() => (corked.length === 0 ? undefined : corked.length === 1 ? corked[0] : Buffer.concat(corked)));
  const write = (p: Packet, compress = false, cb?: () => void): void => {
    if (socket.destroyed) return;
    const b = encodePacket(p, compress ? { compressMin: ctx.compressMin() } : {});
    if (inChunk) corked.push(b);
    socket.write(b, cb);
  };

  const close = (rc: number, message: string): void => {
    if (closing) return;
    closing = true;
    write({ type: 'ERROR', rc, message });
    socket.end();
    // a peer that never reads its side must not keep this worker
    setTimeout(() => socket.destroy(), 2000).unref();
  };

  const protocolError = (e: unknown): void => {
    ctx.countError();
    ctx.log.warn({ client: `${peer.ip}:${peer.port}`, err: errorText(e) }, `protocol error , client[${peer.ip}:${peer.port}] reason[${errorText(e)}] , connection closed`);
    close(resultOf(e), errorText(e).replace(/^IBP_ERR_\w+: /, ''));
  };

  const betweenTransactions = (): void => {
    if (closeAfterTx !== undefined && state.kind === 'IDLE' && reader.idle) close(RC.POOL_STOPPING, closeAfterTx);
  };

  const onPreRequest = (pre: PreRequest, startNs: bigint): void => {
    const granted = pre.flags & ctx.grantable;
    let rejected: TxOutcome | undefined;
    try {
      ctx.runner.check(pre.app);
    } catch (e) {
      rejected = ctx.runner.refused(e);
    }
    write({ type: 'PRE_ANSWER', rc: rejected?.rc ?? RC.OK, load: ctx.load(), granted, message: rejected?.message ?? '' });
    state = { kind: pre.fileCount > 0 ? 'FILES' : 'REQUEST', pre, files: [], rejected, granted, startNs };
  };

  const onRequest = (st: TxState, body: Buffer): void => {
    const { pre } = st;
    const receivedNs = nowNs();
    if (st.rejected) ctx.runner.countRejected(pre.app, 'KEEPALIVE');
    const outcome = st.rejected ?? ctx.runner.run({
      app: pre.app, clientNode: pre.clientNode, clientIp: peer.ip, clientPort: peer.port, journal: pre.journal,
      request: body, files: st.files, prepare: (pre.flags & TX_FLAG.PREPARE) !== 0,
    }, 'KEEPALIVE', (p) => prepared.set(p.journal, p));
    state = { kind: 'IDLE' };
    const compress = (st.granted & TX_FLAG.COMPRESS) !== 0;
    const sendNs = nowNs();
    outcome.files.forEach((f, index) => write({ type: 'PULL_FILE', index, name: f.name, data: f.data }, compress));
    write({
      type: 'RESPONSE', rc: outcome.rc, appRc: outcome.appRc, load: ctx.load(), fileCount: outcome.files.length,
      appUs: outcome.appUs, message: outcome.message, body: outcome.body,
    }, compress, () => {
      ctx.txLog.record({
        journal: pre.journal, app: pre.app, clientNode: pre.clientNode, clientIp: peer.ip, clientPort: peer.port,
        rc: outcome.rc, appRc: outcome.appRc, message: outcome.message, via: 'binary',
        receiveUs: Number((receivedNs - st.startNs) / 1000n), appUs: outcome.appUs, sendUs: Number((nowNs() - sendNs) / 1000n),
      });
    });
    if (ctx.mustClose() && closeAfterTx === undefined) closeAfterTx = 'the worker is leaving (stop or recycle): reconnect';
  };

  const onTxControl = (p: Extract<Packet, { type: 'TX_CONTROL' }>): void => {
    const tx = prepared.get(p.journal);
    let outcome: TxOutcome;
    if (p.op === 'PREPARE') {
      outcome = ctx.runner.refused(new IbpError('IBP_ERR_CLIENT_NOT_SUPPORTED', { feature: 'TX_CONTROL PREPARE (ask PREPARE in the pre-request flags)' }));
    } else if (!tx) {
      outcome = ctx.runner.refused(new IbpError('IBP_ERR_PROTO_SEQUENCE', { type: 'TX_CONTROL', detail: `for journal ${JSON.stringify(p.journal)}: no prepared transaction with it on this connection` }));
    } else {
      prepared.delete(p.journal);
      outcome = ctx.runner.decide(tx, p.op === 'COMMIT', 'KEEPALIVE');
      ctx.log.info(`two-phase ${p.op.toLowerCase()} , journal[${p.journal}] app[${tx.app}] rc[${outcome.rc}]`);
    }
    write({ type: 'TX_CONTROL_ANSWER', rc: outcome.rc, load: ctx.load(), message: outcome.message });
  };

  const onPacket = (p: Packet, arrivedNs: bigint): void => {
    switch (p.type) {
      case 'PRE_REQUEST':
        if (state.kind !== 'IDLE') throw sequence(p.type, `while ${state.kind === 'FILES' ? 'files' : 'the request'} of the previous transaction are due`);
        onPreRequest(p, arrivedNs);
        return;
      case 'PUSH_FILE': {
        if (state.kind !== 'FILES') throw sequence(p.type, state.kind === 'IDLE' ? 'before a pre-request' : 'after every announced file');
        if (p.index !== state.files.length) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `PUSH_FILE index ${p.index}, expected ${state.files.length}` });
        state.files.push({ name: p.name, data: p.data });
        if (state.files.length === state.pre.fileCount) state = { ...state, kind: 'REQUEST' };
        return;
      }
      case 'REQUEST':
        if (state.kind !== 'REQUEST') throw sequence(p.type, state.kind === 'IDLE' ? 'before a pre-request' : `with ${state.pre.fileCount - state.files.length} announced files missing`);
        onRequest(state, p.body);
        return;
      case 'KEEPALIVE':
        if (state.kind !== 'IDLE') throw sequence(p.type, 'inside a transaction');
        write({ type: 'KEEPALIVE_ACK', load: ctx.load() });
        return;
      case 'TX_CONTROL':
        if (state.kind !== 'IDLE') throw sequence(p.type, 'inside a transaction');
        onTxControl(p);
        return;
      default:
        throw sequence(p.type, '(a server-to-client packet)');
    }
  };

  const onData = (chunk: Buffer): void => {
    if (closing) return;
    const arrived = nowNs();
    // answers to one chunk leave in one write (PRE_ANSWER + RESPONSE of a pipelined transaction)
    socket.cork();
    inChunk = true;
    try {
      for (const frame of reader.push(chunk)) {
        if (closing) return;
        onPacket(decodePacket(frame, ctx.limits), arrived);
      }
    } catch (e) {
      protocolError(e);
      return;
    } finally {
      inChunk = false;
      corked.length = 0;
      socket.uncork();
    }
    betweenTransactions();
  };

  socket.setTimeout(ctx.idleTimeoutMs, () => {
    if (closing) return;
    const mid = state.kind !== 'IDLE' || !reader.idle;
    ctx.log.info({ client: `${peer.ip}:${peer.port}` }, `connection idle , client[${peer.ip}:${peer.port}] ms[${ctx.idleTimeoutMs}]${mid ? ' inside a transaction' : ''} , closed`);
    if (mid) ctx.countError();
    close(RC.PROTO_IDLE, new IbpError('IBP_ERR_PROTO_IDLE', { ms: ctx.idleTimeoutMs }).message);
  });
  socket.on('data', onData);
  /** The peer went away (end or reset): a cut frame or transaction is a logged protocol error. */
  const peerGone = (how: string): void => {
    if (closing) return;
    closing = true;
    try {
      reader.end();
      if (state.kind !== 'IDLE') throw new IbpError('IBP_ERR_PROTO_TRUNCATED', { detail: `client ${how} with the transaction of ${state.pre.app} incomplete` });
    } catch (e) {
      ctx.countError();
      ctx.log.warn({ client: `${peer.ip}:${peer.port}`, err: errorText(e) }, `protocol error , client[${peer.ip}:${peer.port}] reason[${errorText(e)}] (${how})`);
    }
  };
  socket.on('end', () => {
    peerGone('closed');
    socket.end();
  });
  socket.on('error', (e) => {
    if (!closing) ctx.log.info({ client: `${peer.ip}:${peer.port}` }, `connection error , client[${peer.ip}:${peer.port}] reason[${e.message}]`);
    peerGone(`reset (${(e as NodeJS.ErrnoException).code ?? e.message})`);
  });
  socket.on('close', () => {
    peerGone('went away');
    closing = true;
    for (const tx of prepared.values()) {
      const outcome = ctx.runner.decide(tx, false, 'WORKING');
      ctx.log.warn(`two-phase rollback: connection closed before the decision , journal[${tx.journal}] app[${tx.app}] rc[${outcome.rc}]`);
    }
    prepared.clear();
    resolveDone();
  });

  if (first.length > 0) onData(first);
  socket.resume();

  return {
    done,
    requestClose(reason: string): void {
      closeAfterTx = reason;
      betweenTransactions();
    },
  };
}

function sequence(type: string, detail: string): IbpError {
  return new IbpError('IBP_ERR_PROTO_SEQUENCE', { type, detail });
}


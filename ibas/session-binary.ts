/**
 * The binary protocol of one connection (docs/ARCHITECTURE.md §6.3) as a sans-IO session:
 *
 *   IDLE ──PRE_REQUEST──▶ FILES (n > 0) ──PUSH_FILE × n──▶ REQUEST ──REQUEST──▶ run ──▶ IDLE
 *   IDLE ──KEEPALIVE──▶ KEEPALIVE_ACK        IDLE ──TX_CONTROL──▶ commit/rollback ──▶ IDLE
 *
 * A rejected pre-request (unknown/invalid app, no config space) is answered at once and its files
 * and request are still read and dropped, so pipelining clients stay in step; the RESPONSE repeats
 * the rejection. Any malformed, oversized, refused or out-of-order packet: an ERROR packet, a warn
 * line in the worker log, the connection closes, the worker goes on.
 *
 * Memory is bounded before it is spent: each frame header is judged as soon as its 12 bytes are
 * in (FrameReader.next's hook), before its body is buffered — an lz4 packet without COMPRESS
 * granted in this transaction's PRE_ANSWER is refused (IBP_ERR_PROTO_NOT_GRANTED), and the
 * attached files' total (comm.max_files_bytes) is checked from the declared size; an lz4 file's
 * original size (the first 4 bytes of its body) is checked before it is decoded.
 *
 * Frames are handled in order as they complete; the answers of one input chunk leave together
 * (a pipelined PRE_ANSWER + RESPONSE in one send). While an app runs, `out` holds the answers not
 * yet sent: the worker's AlarmGuard writes them before a tier-1 or crash answer.
 *
 * Signed exchanges (docs/ARCHITECTURE.md §6.6): a sealed PRE_REQUEST's hello is judged by the
 * worker's TxGate (lib/protocol/tx-security.ts) after the app lookup (which follows a newer config
 * segment, and with it newly published node keys); every later packet of the exchange is opened
 * with its seal before it is decoded, and every answer is sealed. A refusal about the client's key
 * or an unsigned pre-request where signing is required goes in the PRE_ANSWER (SAFE, in step);
 * a forged, replayed or reordered packet is a protocol error (ERROR, closed). A TX_CONTROL (a
 * two-phase decision, possibly on a new connection) carries a hello the same way and is judged by
 * the same gate, as sent by the node entitled to decide (#decider); its answer is sealed. Where
 * signing is required a clear TX_CONTROL is refused (TX_UNPROTECTED, answered, nothing decided).
 *
 * Send-ahead: when the app sends its response ahead, the transaction's answer (PULL_FILE × n,
 * RESPONSE: the frames the end of the call would send) is queued and flushed through the driver
 * at once (with any answers held before it); when the app returns, nothing more is sent for it
 * and the transaction log line says sent_ahead with the final result.
 */
import { IbpError, errorText } from '../lib/errors.js';
import { FRAME_FLAG, FRAME_TYPE, FrameReader, frameTypeName, type Frame, type FrameType } from '../lib/protocol/frame.js';
import { decodePacket, encodePacket, TX_FLAG, type Packet, type PreRequest } from '../lib/protocol/codec.js';
import { RC, resultOf } from '../lib/protocol/result-codes.js';
import { SEAL_OVERHEAD, splitHello, type AgreementCache, type Hello, type TxSeal } from '../lib/protocol/tx-crypto.js';
import type { GateResult } from '../lib/protocol/tx-security.js';
import type { InputState, Phase } from './deadlines.js';
import type { ConnectionContext, FlushNow, Peer, Session } from './session.js';
import type { PreparedTx, TxFile, TxOutcome } from './transaction.js';
import type { AppView } from '../lib/shm/config-space.js';
import { crashPoint } from '../lib/crash-point.js';
import { gtridNode } from '../lib/gtrid.js';

interface TxState { kind: 'FILES' | 'REQUEST'; pre: PreRequest; files: TxFile[]; filesBytes: number; rejected?: TxOutcome; granted: number; startNs: bigint; seal?: TxSeal; view?: AppView }
type State = { kind: 'IDLE' } | TxState;

/** Bytes of a PUSH_FILE body that are not file data at most (index, name of ≤ 255 bytes, size). */
const FILE_OVERHEAD = 2 + 1 + 255 + 4;

function sequence(type: string, detail: string): IbpError {
  return new IbpError('IBP_ERR_PROTO_SEQUENCE', { type, detail });
}

export class BinarySession implements Session {
  readonly out: Buffer[] = [];
  readonly afterSend: (() => void)[] = [];
  closing = false;
  completed = 0;
  readonly #ctx: ConnectionContext;
  readonly #peer: Peer;
  readonly #flushNow: FlushNow | undefined;
  readonly #reader: FrameReader;
  readonly #prepared = new Map<string, PreparedTx>();
  #state: State = { kind: 'IDLE' };
  /** First byte of the transaction being read (for the transaction log's receive time). */
  #firstByteNs = 0n;
  /** The hello of the sealed PRE_REQUEST being handled (tx-crypto). */
  #hello: Hello | undefined;
  /** The connection's key-agreement cache (a client keeps one ephemeral key per connection). */
  readonly #agreed: AgreementCache = {};
  readonly #onHeader = (h: { type: FrameType; flags: number; length: number }): void => this.#judgeHeader(h);

  constructor(ctx: ConnectionContext, peer: Peer, flushNow?: FlushNow) {
    this.#ctx = ctx;
    this.#peer = peer;
    this.#flushNow = flushNow;
    this.#reader = new FrameReader(ctx.limits.maxFrame);
  }

  input(): InputState {
    if (this.#state.kind !== 'IDLE') return 'REQUEST';
    return this.#reader.idle ? 'IDLE' : 'HEADER';
  }

  push(chunk: Buffer): void {
    if (this.closing) return;
    if (this.#firstByteNs === 0n && this.#state.kind === 'IDLE' && this.#reader.idle) this.#firstByteNs = process.hrtime.bigint();
    try {
      this.#reader.feed(chunk);
      for (let f = this.#reader.next(this.#onHeader); f; f = this.#reader.next(this.#onHeader)) {
        this.#onPacket(this.#decode(f));
        if (this.closing) return;
      }
    } catch (e) {
      this.#protocolError(e);
    }
  }

  end(how: string): void {
    if (this.closing) return;
    this.closing = true;
    try {
      this.#reader.end();
      if (this.#state.kind !== 'IDLE') throw new IbpError('IBP_ERR_PROTO_TRUNCATED', { detail: `client ${how} with the transaction of ${this.#state.pre.app} incomplete` });
    } catch (e) {
      this.#ctx.countError();
      this.#ctx.log.warn({ client: this.#client(), err: errorText(e) }, `protocol error , client[${this.#client()}] reason[${errorText(e)}] (${how})`);
    }
  }

  leave(reason: string): void {
    this.#close(RC.POOL_STOPPING, reason);
  }

  expire(phase: Phase, ms: number, answerInFlight: boolean): void {
    if (answerInFlight) {
      this.closing = true;
      return;
    }
    const e = new IbpError('IBP_ERR_PROTO_DEADLINE', { phase, ms });
    this.#close(resultOf(e), e.message);
  }

  closed(): void {
    this.closing = true;
    for (const tx of this.#prepared.values()) {
      if (tx.input.gtrid) {
        this.#ctx.inDoubt.abandon(tx); // voted yes in a global transaction: only its coordinator or an operator decides
        continue;
      }
      const outcome = this.#ctx.runner.decide(tx, false, 'WORKING');
      this.#ctx.log.warn(`two-phase rollback: connection closed before the decision , journal[${tx.journal}] app[${tx.app}] rc[${outcome.rc}]`);
    }
    this.#prepared.clear();
  }

  #client(): string {
    return `${this.#peer.ip}:${this.#peer.port}`;
  }

  #write(p: Packet, compress = false, seal?: TxSeal): void {
    const frame = encodePacket(p, compress ? { compressMin: this.#ctx.compressMin() } : {});
    this.out.push(seal ? seal.seal(frame) : frame);
  }

  #close(rc: number, message: string): void {
    if (this.closing) return;
    this.closing = true;
    this.#write({ type: 'ERROR', rc, message });
  }

  #protocolError(e: unknown): void {
    this.#ctx.countError();
    this.#ctx.log.warn({ client: this.#client(), err: errorText(e) }, `protocol error , client[${this.#client()}] reason[${errorText(e)}] , connection closed`);
    this.#close(resultOf(e), errorText(e).replace(/^IBP_ERR_\w+: /, ''));
  }

  /** A frame header, before its body is buffered: compression granted? file bytes within the total? */
  #judgeHeader(h: { type: FrameType; flags: number; length: number }): void {
    const st = this.#state;
    const granted = st.kind === 'IDLE' ? 0 : st.granted;
    if ((h.flags & FRAME_FLAG.LZ4) !== 0 && (granted & TX_FLAG.COMPRESS) === 0) {
      throw new IbpError('IBP_ERR_PROTO_NOT_GRANTED', { type: frameTypeName(h.type) });
    }
    if (h.type === FRAME_TYPE.PUSH_FILE && st.kind === 'FILES' && (h.flags & FRAME_FLAG.LZ4) === 0) {
      this.#checkFiles(st.filesBytes + Math.max(0, h.length - FILE_OVERHEAD - ((h.flags & FRAME_FLAG.SEALED) !== 0 ? SEAL_OVERHEAD : 0)));
    }
  }

  #checkFiles(total: number): void {
    const limit = this.#ctx.maxFilesBytes;
    if (total > limit) throw new IbpError('IBP_ERR_PROTO_TOO_LARGE', { size: `${total} bytes of attached files`, limit: `comm.max_files_bytes ${limit}` });
  }

  #decode(f: Frame): Packet {
    const st = this.#state;
    if (st.kind !== 'IDLE' && st.seal) {
      // a protected exchange: every packet sealed, in sequence, untouched
      f = st.seal.open(f);
    } else if ((f.flags & FRAME_FLAG.SEALED) !== 0) {
      if (f.type !== FRAME_TYPE.PRE_REQUEST && f.type !== FRAME_TYPE.TX_CONTROL) {
        throw new IbpError('IBP_ERR_TX_NOT_GRANTED', { what: 'signing', host: 'this server', detail: `a sealed ${frameTypeName(f.type)} outside a signed exchange: seal only once PRE_ANSWER grants SIGN` });
      }
      if ((f.flags & FRAME_FLAG.ENCRYPTED) !== 0) {
        throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `a ${frameTypeName(f.type)} carrying a hello is signed, never encrypted (flag ENCRYPTED)` });
      }
      const { inner, hello } = splitHello(f.body, f.type);
      this.#hello = hello;
      f = { type: f.type, flags: f.flags & ~FRAME_FLAG.SEALED, body: inner };
    }
    if (f.type === FRAME_TYPE.PUSH_FILE && st.kind === 'FILES' && (f.flags & FRAME_FLAG.LZ4) !== 0 && f.body.length >= 4) {
      // the lz4 wire form carries the original size first: judge it before decoding
      this.#checkFiles(st.filesBytes + Math.max(0, f.body.readUInt32BE(0) - FILE_OVERHEAD));
    }
    return decodePacket(f, this.#ctx.limits);
  }

  #onPacket(p: Packet): void {
    const st = this.#state;
    switch (p.type) {
      case 'PRE_REQUEST':
        if (st.kind !== 'IDLE') throw sequence(p.type, `while ${st.kind === 'FILES' ? 'files' : 'the request'} of the previous transaction are due`);
        this.#onPreRequest(p);
        return;
      case 'PUSH_FILE': {
        if (st.kind !== 'FILES') throw sequence(p.type, st.kind === 'IDLE' ? 'before a pre-request' : 'after every announced file');
        if (p.index !== st.files.length) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: `PUSH_FILE index ${p.index}, expected ${st.files.length}` });
        st.filesBytes += p.data.length;
        this.#checkFiles(st.filesBytes);
        st.files.push({ name: p.name, data: p.data });
        if (st.files.length === st.pre.fileCount) st.kind = 'REQUEST';
        return;
      }
      case 'REQUEST':
        if (st.kind !== 'REQUEST') throw sequence(p.type, st.kind === 'IDLE' ? 'before a pre-request' : `with ${st.pre.fileCount - st.files.length} announced files missing`);
        this.#onRequest(st, p.body);
        return;
      case 'KEEPALIVE':
        if (st.kind !== 'IDLE') throw sequence(p.type, 'inside a transaction');
        this.#write({ type: 'KEEPALIVE_ACK', load: this.#ctx.load() });
        this.#messageDone();
        return;
      case 'TX_CONTROL':
        if (st.kind !== 'IDLE') throw sequence(p.type, 'inside a transaction');
        this.#onTxControl(p);
        this.#messageDone();
        return;
      default:
        throw sequence(p.type, '(a server-to-client packet)');
    }
  }

  #messageDone(): void {
    this.completed++;
    this.#firstByteNs = 0n;
  }

  #onPreRequest(pre: PreRequest): void {
    const ctx = this.#ctx;
    const hello = this.#hello;
    this.#hello = undefined;
    // the app lookup first: it follows a newer config segment (and with it newly published node keys)
    let appRefusal: unknown;
    let view: AppView | undefined;
    try {
      view = ctx.runner.check(pre.app);
    } catch (e) {
      appRefusal = e;
    }
    // signing and encryption: judged by the gate (a forged or replayed handshake throws: ERROR, closed)
    const sec: GateResult = ctx.gate ? ctx.gate.judge(pre, hello, this.#agreed) : { granted: 0 };
    const granted = (pre.flags & ctx.grantable & ~(TX_FLAG.SIGN | TX_FLAG.ENCRYPT)) | sec.granted;
    let rejected: TxOutcome | undefined;
    if (sec.refusal) {
      rejected = ctx.runner.refused(sec.refusal);
      ctx.log.warn({ client: this.#client(), node: pre.clientNode, app: pre.app, err: errorText(sec.refusal) },
        `transaction refused , client[${this.#client()}] node[${pre.clientNode}] app[${pre.app}] journal[${pre.journal}] reason[${errorText(sec.refusal)}]`);
    } else if (appRefusal !== undefined) {
      rejected = ctx.runner.refused(appRefusal);
    }
    this.#write({ type: 'PRE_ANSWER', rc: rejected?.rc ?? RC.OK, load: ctx.load(), granted, message: rejected?.message ?? '' }, false, sec.seal);
    // the PRE_ANSWER tells the client whether ENCRYPT was granted: encryption starts after it
    if (sec.seal) sec.seal.encrypt = (granted & TX_FLAG.ENCRYPT) !== 0;
    this.#state = { kind: pre.fileCount > 0 ? 'FILES' : 'REQUEST', pre, files: [], filesBytes: 0, rejected, granted, startNs: this.#firstByteNs || process.hrtime.bigint(), seal: sec.seal, view };
  }

  #onRequest(st: TxState, body: Buffer): void {
    const ctx = this.#ctx;
    const { pre } = st;
    const peer = this.#peer;
    const receivedNs = process.hrtime.bigint();
    if (st.rejected) ctx.runner.countRejected(pre.app, 'KEEPALIVE');
    const compress = (st.granted & TX_FLAG.COMPRESS) !== 0;
    const seal = st.seal;
    let sendNs = 0n;
    let sendUs = -1;
    const outcome = st.rejected ?? ctx.runner.run({
      app: pre.app, clientNode: pre.clientNode, clientIp: peer.ip, clientPort: peer.port, journal: pre.journal, gtrid: pre.gtrid,
      request: body, files: st.files, prepare: (pre.flags & TX_FLAG.PREPARE) !== 0, view: st.view,
      onSendAhead: this.#flushNow ? (early) => {
        sendNs = process.hrtime.bigint();
        this.#answer(early, compress, seal);
        if (!this.#flushNow!()) this.#sendAheadFailed(pre.app);
        sendUs = Number((process.hrtime.bigint() - sendNs) / 1000n);
      } : undefined,
    }, 'KEEPALIVE', (p) => this.#prepared.set(p.journal, p));
    const voted = this.#twoPhaseVote(pre, outcome);
    this.#state = { kind: 'IDLE' };
    this.#messageDone();
    if (!outcome.sentAhead) {
      sendNs = process.hrtime.bigint();
      this.#answer(outcome, compress, seal);
    }
    if (voted) this.afterSend.push(() => crashPoint('participant_after_vote'));
    this.afterSend.push(() => ctx.txLog.record({
      journal: pre.journal, gtrid: pre.gtrid, app: pre.app, clientNode: pre.clientNode, clientIp: peer.ip, clientPort: peer.port,
      rc: outcome.rc, appRc: outcome.appRc, message: outcome.message, via: 'binary', sentAhead: outcome.sentAhead,
      receiveUs: Number((receivedNs - st.startNs) / 1000n), appUs: outcome.appUs, sendUs: sendUs >= 0 ? sendUs : Number((process.hrtime.bigint() - sendNs) / 1000n),
    }));
  }

  /**
   * Two-phase commit of a global transaction: the app prepared (rc 0) → PREPARED in the
   * participant log before the vote is answered (ibas/in-doubt.ts). The outcome is replaced by a
   * refusal when the log says no. True when the answer is a yes vote of a gtrid transaction.
   */
  #twoPhaseVote(pre: PreRequest, outcome: TxOutcome): boolean {
    const tx = pre.gtrid ? this.#prepared.get(pre.journal) : undefined;
    if (!tx || tx.input.gtrid !== pre.gtrid || outcome.rc !== RC.OK) return false;
    const voted = this.#ctx.inDoubt.afterPrepare(tx, outcome, 'KEEPALIVE');
    if (voted === outcome) return true;
    this.#prepared.delete(pre.journal);
    Object.assign(outcome, voted);
    return false;
  }

  /** A transaction's answer: its files, then the RESPONSE. */
  #answer(o: TxOutcome, compress: boolean, seal: TxSeal | undefined): void {
    o.files.forEach((f, index) => this.#write({ type: 'PULL_FILE', index, name: f.name, data: f.data }, compress, seal));
    this.#write({
      type: 'RESPONSE', rc: o.rc, appRc: o.appRc, load: this.#ctx.load(), fileCount: o.files.length,
      appUs: o.appUs, message: o.message, body: o.body,
    }, compress, seal);
  }

  /** The early answer could not be sent (the connection broke or its send deadline expired). */
  #sendAheadFailed(app: string): void {
    this.closing = true;
    this.#ctx.log.warn({ client: this.#client(), app }, `send-ahead answer not delivered , client[${this.#client()}] app[${app}] , connection closed`);
  }

  #onTxControl(p: Extract<Packet, { type: 'TX_CONTROL' }>): void {
    const ctx = this.#ctx;
    const hello = this.#hello;
    this.#hello = undefined;
    const tx = this.#prepared.get(p.journal);
    // sealed like a pre-request (docs/security.md): a forged or replayed hello throws (ERROR, closed);
    // the node entitled to decide is the coordinator's, the server's own for an operator
    let sec: GateResult = { granted: 0 };
    try {
      if (ctx.gate) sec = ctx.gate.judge({ flags: hello ? TX_FLAG.SIGN | TX_FLAG.ENCRYPT : 0, clientNode: this.#decider(p, tx) }, hello, this.#agreed);
    } catch (e) {
      // the gate names the packet it judges a PRE_REQUEST: this one is a TX_CONTROL
      throw e instanceof IbpError && e.params.type === 'PRE_REQUEST' ? new IbpError(e.code, { ...e.params, type: 'TX_CONTROL' }) : e;
    }
    if (sec.seal) sec.seal.encrypt = (sec.granted & TX_FLAG.ENCRYPT) !== 0;
    let outcome: TxOutcome;
    if (sec.refusal) {
      outcome = ctx.runner.refused(sec.refusal);
      ctx.log.warn({ client: this.#client(), gtrid: p.gtrid, journal: p.journal, err: errorText(sec.refusal) },
        `two-phase ${p.op.toLowerCase()} refused , client[${this.#client()}] gtrid[${p.gtrid}] journal[${p.journal}] reason[${errorText(sec.refusal)}]`);
    } else if (p.op !== 'PREPARE' && p.gtrid !== '') {
      // a global transaction: decided through the participant log, on any connection
      const held = tx && tx.input.gtrid === p.gtrid ? tx : undefined;
      if (held) this.#prepared.delete(p.journal);
      outcome = ctx.inDoubt.decide(p.op, p.gtrid, p.journal, held, 'KEEPALIVE');
    } else if (p.op === 'PREPARE') {
      outcome = ctx.runner.refused(new IbpError('IBP_ERR_CLIENT_NOT_SUPPORTED', { feature: 'TX_CONTROL PREPARE (ask PREPARE in the pre-request flags)' }));
    } else if (!tx) {
      outcome = ctx.runner.refused(new IbpError('IBP_ERR_PROTO_SEQUENCE', { type: 'TX_CONTROL', detail: `for journal ${JSON.stringify(p.journal)}: no prepared transaction with it on this connection` }));
    } else {
      this.#prepared.delete(p.journal);
      outcome = ctx.runner.decide(tx, p.op === 'COMMIT', 'KEEPALIVE');
      ctx.log.info(`two-phase ${p.op.toLowerCase()} , journal[${p.journal}] app[${tx.app}] rc[${outcome.rc}]`);
    }
    this.#write({ type: 'TX_CONTROL_ANSWER', rc: outcome.rc, load: ctx.load(), message: outcome.message, appRc: outcome.appRc, body: outcome.body }, false, sec.seal);
  }

  /**
   * The node whose key must seal a decision: the prepare's client when it was prepared on this
   * connection, else the coordinator in the branch's participant record (else the gtrid's first part, lib/gtrid.ts);
   * an operator's decision (empty journal, `ibas -a commit_tx|abort_tx`) is sealed with this server's own key.
   */
  #decider(p: Extract<Packet, { type: 'TX_CONTROL' }>, tx: PreparedTx | undefined): string {
    // a transaction of this connection names its client only for its own gtrid (never for another's)
    if (tx && (tx.input.gtrid ?? '') === p.gtrid) return tx.input.clientNode;
    if (p.gtrid === '') return '';
    if (p.journal === '') return this.#ctx.gate?.localNode() ?? '';
    try {
      const rec = this.#ctx.inDoubt.log.get(p.gtrid, p.journal);
      if (rec && rec.clientNode !== '') return rec.clientNode;
    } catch {
      // an unreadable record: the gtrid's own coordinator part decides who may ask (the decision reports the log)
    }
    return gtridNode(p.gtrid);
  }
}

/**
 * One transaction on a channel, IBP's four packets (docs/ARCHITECTURE.md §6.3):
 *
 *   PRE_REQUEST ──▶                   client node, app, journal, flags asked, file count, timeout
 *               ◀── PRE_ANSWER        rc ≠ 0: rejected → ServerError, phase SAFE (nothing ran)
 *   PUSH_FILE × n ──▶                 only once the pre-request was accepted (no upload in vain)
 *   REQUEST ──▶                       commStatus ON_SENDING from its first byte, AFTER_SEND once written
 *               ◀── PULL_FILE × m
 *               ◀── RESPONSE          rc ≠ 0 → ServerError, phase ANSWERED
 *
 * Waiting for the pre-answer before pushing files and the request is what keeps a failure SAFE
 * as long as possible: a server that dies, refuses or is stopping before the REQUEST packet
 * costs the caller a retry, never a suspicious transaction.
 *
 * A rejected pre-request still owes the server its n files and the request (the server reads and
 * drops them, then repeats the rejection in a RESPONSE): the client sends them empty so that the
 * connection stays in step and can serve the next transaction.
 *
 * The whole exchange, pre-request to response, is bounded by the app's client timeout.
 */
import { IbpError } from '../lib/errors.js';
import { encodePacket, TX_FLAG, type Load, type Packet } from '../lib/protocol/codec.js';
import { FRAME_FLAG, FRAME_TYPE, type Frame } from '../lib/protocol/frame.js';
import type { NodePrivateKey, NodePublicKey } from '../lib/node-keys.js';
import { Ephemeral, sealPreRequest, TxSeal } from '../lib/protocol/tx-crypto.js';
import type { Protection } from '../lib/protocol/tx-security.js';
import { CommStatusTracker, COMM_STATUS, type CommStatus } from '../lib/protocol/comm-status.js';
import { RC } from '../lib/protocol/result-codes.js';
import { isBreak, type Break, type Channel } from './channel.js';
import { IbacError, ProtectionError, SafeError, ServerError, SuspiciousError, type FailureContext } from './errors.js';
import { MAX_FILES } from './files.js';

/** Where a transaction stands (for `conn.step`, ops and tests). @enum */
export const STEP = {
  IDLE: 'IDLE',
  /** PRE_REQUEST written, waiting for PRE_ANSWER. */
  PRE_REQUEST: 'PRE_REQUEST',
  /** Pushing request files. */
  PUSH_FILES: 'PUSH_FILES',
  /** Writing the REQUEST packet. */
  SENDING: 'SENDING',
  /** REQUEST written, waiting for PULL_FILE / RESPONSE. */
  RESPONSE: 'RESPONSE',
  /** TX_CONTROL written, waiting for its answer. */
  CONTROL: 'CONTROL',
} as const;
export type Step = (typeof STEP)[keyof typeof STEP];

export interface ExchangeInput {
  clientNode: string;
  app: string;
  journal: string;
  /** The global transaction id of a multi-transaction ('' or undefined: none). */
  gtrid?: string;
  request: Buffer;
  files: { name: string; data: Buffer }[];
  /** TX_FLAG bits asked (COMPRESS, PREPARE). */
  flags: number;
  timeoutMs: number;
  /** Bodies at least this long are lz4-compressed once COMPRESS was granted. */
  compressMin: number;
  /** Sign (and encrypt) this transaction: the keys and what this client insists on. */
  protect?: Protect;
}

/** A protected exchange's keys and this client's wishes (ibac/connect.ts decides them). */
export interface Protect {
  own: NodePrivateKey;
  server: NodePublicKey;
  /** 'required': abandon (SAFE) when the server does not grant it; 'optional': go on in clear. */
  sign: Exclude<Protection, 'none'>;
  encrypt: Protection;
}

export interface ExchangeResult {
  appRc: number;
  body: Buffer;
  files: { name: string; data: Buffer }[];
  load: Load;
  granted: number;
  appUs: number;
  message: string;
}

/** The per-connection state an exchange updates. */
export interface ExchangeState {
  tracker: CommStatusTracker;
  step: Step;
  /** Called with the load of every answer (one CAS write to shm). */
  onLoad(load: Load): void;
}

/** Turn a broken channel into the right error for how far the transaction got. */
export function failureOf(b: Break, status: CommStatus, ctx: FailureContext): IbacError {
  if (status === COMM_STATUS.BEFORE_SEND) return new SafeError(b.reason, b.detail, ctx, b.rc, { cause: b.cause });
  return new SuspiciousError(b.reason, b.detail, status, ctx, b.rc, { cause: b.cause });
}

function unexpected(p: Packet, expected: string): Break {
  return { reason: 'protocol', detail: `the server sent ${p.type} where ${expected} was due` };
}

/** Run one transaction. Throws SafeError, SuspiciousError or ServerError (and never leaves the channel out of step). */
export async function exchange(ch: Channel, input: ExchangeInput, st: ExchangeState, ctx: FailureContext): Promise<ExchangeResult> {
  return guarded(ch, st, ctx, input.timeoutMs, `complete answer from ${ch.key} for ${input.app} (client timeout)`, () => st.tracker.status, () => run(ch, input, st, ctx));
}

/**
 * The frame of every exchange on a channel: busy and armed with the client timeout while it runs;
 * a break closes the channel (it may be out of step) and becomes a typed failure whose
 * communication status `statusOnBreak` tells (SAFE / SUSPICIOUS).
 */
async function guarded<T>(ch: Channel, st: ExchangeState, ctx: FailureContext, timeoutMs: number, what: string, statusOnBreak: () => CommStatus, body: () => Promise<T>): Promise<T> {
  st.tracker.reset();
  ch.busy(true);
  ch.arm(timeoutMs, what);
  try {
    return await body();
  } catch (e) {
    if (isBreak(e)) {
      ch.breakOff(e);
      throw failureOf(e, statusOnBreak(), ctx);
    }
    throw e;
  } finally {
    ch.disarm();
    ch.busy(false);
    st.step = STEP.IDLE;
  }
}

async function run(ch: Channel, input: ExchangeInput, st: ExchangeState, ctx: FailureContext): Promise<ExchangeResult> {
  if (ch.pending > 0) throw { reason: 'protocol', detail: `${ch.pending} unexpected packets from the server between transactions` } satisfies Break;
  st.step = STEP.PRE_REQUEST;
  const prot = input.protect;
  const flags = input.flags | (prot ? TX_FLAG.SIGN | (prot.encrypt !== 'none' ? TX_FLAG.ENCRYPT : 0) : 0);
  const { frame: preFrame, sess } = withHello(ch, encodePacket({
    type: 'PRE_REQUEST', flags, fileCount: input.files.length, timeoutMs: Math.min(Math.round(input.timeoutMs), 0xffffffff),
    clientNode: input.clientNode, app: input.app, journal: input.journal, gtrid: input.gtrid ?? '',
  }), prot);
  ch.opener = (f) => openAnswer(sess, f);
  try {
    // the channel's write errors surface through next(): no need to wait for the pre-request's flush
    ch.write(preFrame).catch(() => undefined);
    return await afterPreRequest(ch, input, st, ctx, sess);
  } finally {
    ch.opener = undefined;
  }
}

/**
 * The first packet of an exchange (PRE_REQUEST or TX_CONTROL) as it goes out: in clear without
 * `prot`; else sealed behind a hello — signed, or resumed (MAC'd) on a connection where this client
 * key's signed hello was accepted — with the exchange's seal for what follows.
 */
function withHello(ch: Channel, frame: Buffer, prot: Protect | undefined): { frame: Buffer; sess: Sess } {
  const sess: Sess = { answerSealed: false };
  if (!prot) return { frame, sess };
  ch.ephemeral ??= new Ephemeral();
  sess.resumeId = `${prot.own.kcv}:${prot.server.kcv}`;
  const sealed = sealPreRequest(frame, prot.own, prot.server, ch.ephemeral, Date.now(), ch.ephemeral.resumable.has(sess.resumeId));
  sess.seal = new TxSeal('client', sealed.keys, prot.own.kcv, prot.server.kcv, false);
  return { frame: sealed.frame, sess };
}

/** What the client accepts from the server in a (possibly) protected exchange. */
interface Sess { seal?: TxSeal; answerSealed: boolean; resumeId?: string }

function openAnswer(sess: Sess, f: Frame): Frame {
  const sealed = (f.flags & FRAME_FLAG.SEALED) !== 0;
  if (!sess.seal) {
    if (sealed) throw new IbpError('IBP_ERR_TX_NOT_GRANTED', { what: 'signing', host: 'the server', detail: 'it sealed a packet of an exchange this client did not sign' });
    return f;
  }
  // an ERROR is never sealed (it may come at any time); a server that grants nothing answers in clear
  if (!sealed && (f.type === FRAME_TYPE.ERROR || ((f.type === FRAME_TYPE.PRE_ANSWER || f.type === FRAME_TYPE.TX_CONTROL_ANSWER) && sess.seal.received === 0))) return f;
  const opened = sess.seal.open(f);
  if (f.type === FRAME_TYPE.PRE_ANSWER || f.type === FRAME_TYPE.TX_CONTROL_ANSWER) sess.answerSealed = true;
  return opened;
}

async function afterPreRequest(ch: Channel, input: ExchangeInput, st: ExchangeState, ctx: FailureContext, sess: Sess): Promise<ExchangeResult> {
  const pre = await ch.next();
  if (pre.type !== 'PRE_ANSWER') throw unexpected(pre, 'PRE_ANSWER');
  st.onLoad(pre.load);
  const prot = input.protect;
  if (prot && sess.seal) {
    const signed = sess.answerSealed && (pre.granted & TX_FLAG.SIGN) !== 0;
    const encrypted = signed && (pre.granted & TX_FLAG.ENCRYPT) !== 0;
    const missing = !signed && prot.sign === 'required' ? 'signing' : !encrypted && prot.encrypt === 'required' ? 'encryption' : undefined;
    if (missing !== undefined && pre.rc === RC.OK) {
      // the server would run the request in clear: it is never sent (the connection is dropped, nothing ran)
      ch.breakOff({ reason: 'destroyed', detail: `${missing} not granted` });
      throw new ProtectionError('IBP_ERR_TX_NOT_GRANTED', { what: missing, host: ch.key, detail: 'this client requires it (sign/encrypt option): enable it in the server\'s ibas.conf security section, or do not require it' }, ctx);
    }
    if (!signed) sess.seal = undefined;
    else {
      sess.seal.encrypt = encrypted;
      sess.seal.requireEncrypted = encrypted;
      // accepted: the server verified this key's signature with this connection's ephemeral key
      if (pre.rc === RC.OK && sess.resumeId) ch.ephemeral?.resumable.add(sess.resumeId);
    }
  }
  const seal = sess.seal;
  const enc = (p: Packet, opts: { compressMin?: number } = {}): Buffer => (seal ? seal.seal(encodePacket(p, opts)) : encodePacket(p, opts));
  if (pre.rc !== RC.OK) {
    await drainRejected(ch, input, st, enc);
    throw new ServerError({ rc: pre.rc, appRc: 0, message: pre.message, body: Buffer.alloc(0) }, true, ctx);
  }
  const compress = (pre.granted & TX_FLAG.COMPRESS) !== 0 ? { compressMin: input.compressMin } : {};
  if (input.files.length > 0) {
    st.step = STEP.PUSH_FILES;
    await ch.write(Buffer.concat(input.files.map((f, index) => enc({ type: 'PUSH_FILE', index, name: f.name, data: f.data }, compress))));
  }
  st.step = STEP.SENDING;
  const request = enc({ type: 'REQUEST', body: input.request }, compress);
  st.tracker.sending();
  await ch.write(request);
  st.tracker.sent();
  st.step = STEP.RESPONSE;
  const files: { name: string; data: Buffer }[] = [];
  for (;;) {
    const p = await ch.next();
    if (p.type === 'PULL_FILE') {
      if (p.index !== files.length || files.length >= MAX_FILES) {
        throw { reason: 'protocol', detail: `PULL_FILE index ${p.index} where ${files.length} was due (at most ${MAX_FILES} response files)` } satisfies Break;
      }
      files.push({ name: p.name, data: p.data });
      continue;
    }
    if (p.type !== 'RESPONSE') throw unexpected(p, 'PULL_FILE or RESPONSE');
    if (p.fileCount !== files.length) throw { reason: 'protocol', detail: `RESPONSE announces ${p.fileCount} files, ${files.length} came` } satisfies Break;
    st.onLoad(p.load);
    if (p.rc !== RC.OK) throw new ServerError({ rc: p.rc, appRc: p.appRc, message: p.message, body: p.body }, false, ctx);
    return { appRc: p.appRc, body: p.body, files, load: p.load, granted: pre.granted, appUs: p.appUs, message: p.message };
  }
}

/** After a rejected pre-request: send the owed files (empty) and request (empty), read the repeated rejection. */
async function drainRejected(ch: Channel, input: ExchangeInput, st: ExchangeState, enc: (p: Packet) => Buffer): Promise<void> {
  try {
    const owed = input.files.map((f, index) => enc({ type: 'PUSH_FILE', index, name: f.name, data: Buffer.alloc(0) }));
    owed.push(enc({ type: 'REQUEST', body: Buffer.alloc(0) }));
    await ch.write(Buffer.concat(owed));
    for (;;) {
      const p = await ch.next();
      if (p.type === 'RESPONSE') break;
      if (p.type !== 'PULL_FILE') throw unexpected(p, 'RESPONSE');
    }
  } catch {
    // the rejection stands; a channel that could not be brought back in step is closed
    ch.breakOff({ reason: 'protocol', detail: 'closed after a rejected pre-request' });
  }
  st.tracker.reset();
}

/**
 * Two-phase commit decision for a prepared transaction on this channel (TX_CONTROL). With
 * `protect` it is sealed like a pre-request (a hello: signed, or resumed on a connection whose
 * signed hello was accepted) and its answer must come sealed.
 */
export async function control(ch: Channel, op: 'COMMIT' | 'ROLLBACK', journal: string, gtrid: string, timeoutMs: number, st: ExchangeState, ctx: FailureContext,
  protect?: Protect): Promise<{ load: Load; message: string; appRc: number; body: Buffer }> {
  return guarded(ch, st, ctx, timeoutMs, `answer to ${op} from ${ch.key}`, () => st.tracker.status, async () => {
    if (ch.pending > 0) throw { reason: 'protocol', detail: `${ch.pending} unexpected packets from the server between transactions` } satisfies Break;
    st.step = STEP.CONTROL;
    const { frame, sess } = withHello(ch, encodePacket({ type: 'TX_CONTROL', op, journal, gtrid }), protect);
    ch.opener = (f) => openAnswer(sess, f);
    try {
      st.tracker.sending();
      await ch.write(frame);
      st.tracker.sent();
      const p = await ch.next();
      if (p.type !== 'TX_CONTROL_ANSWER') throw unexpected(p, 'TX_CONTROL_ANSWER');
      if (protect && !sess.answerSealed && protect.sign === 'required') {
        // a server that does not sign decided (or refused) in clear: its word cannot be trusted as its own
        ch.breakOff({ reason: 'protocol', detail: 'an unsealed TX_CONTROL_ANSWER' });
        throw new ProtectionError('IBP_ERR_TX_NOT_GRANTED', { what: 'signing', host: ch.key, detail: 'the server answered the signed decision in clear: enable signing in its ibas.conf security section (check the decision there: `ibas -s in_doubt`)' }, ctx);
      }
      if (sess.answerSealed && p.rc === RC.OK && sess.resumeId) ch.ephemeral?.resumable.add(sess.resumeId);
      st.onLoad(p.load);
      if (p.rc !== RC.OK) throw new ServerError({ rc: p.rc, appRc: p.appRc, message: p.message, body: p.body }, false, ctx);
      return { load: p.load, message: p.message, appRc: p.appRc, body: p.body };
    } finally {
      ch.opener = undefined;
    }
  });
}

/** KEEPALIVE on an idle long connection; returns the server's load. */
export async function keepAlive(ch: Channel, timeoutMs: number, st: ExchangeState, ctx: FailureContext): Promise<Load> {
  return guarded(ch, st, ctx, timeoutMs, `KEEPALIVE_ACK from ${ch.key}`, () => COMM_STATUS.BEFORE_SEND, async () => {
    ch.write(encodePacket({ type: 'KEEPALIVE' })).catch(() => undefined);
    const p = await ch.next();
    if (p.type !== 'KEEPALIVE_ACK') throw unexpected(p, 'KEEPALIVE_ACK');
    st.onLoad(p.load);
    return p.load;
  });
}

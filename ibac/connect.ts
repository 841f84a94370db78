/**
 * Connections to a node (IBP's IBACConnect / IBACSendRequestAndReceiveResponse / IBACDisconnect).
 *
 * `env.connect(node, app)` picks a host (ibac/balance.ts) and opens a channel to it; the
 * connection then carries any number of transactions, one at a time (a long connection), until
 * `disconnect()`. A short connection is connect + one transaction + disconnect
 * (`env.requester`).
 *
 * A long connection the server closed while it was idle (idle timeout, worker recycled or
 * stopping) is re-opened transparently before the next transaction — nothing had been sent, so
 * this is safe; a break during a transaction is reported (SAFE or SUSPICIOUS) and the next call
 * re-opens.
 */
import type { Home } from '../lib/home.js';
import { TX_FLAG, type Load } from '../lib/protocol/codec.js';
import { CommStatusTracker, type CommStatus } from '../lib/protocol/comm-status.js';
import type { HostChoice } from './balance.js';
import { CLIENT_LIMITS, type Channel } from './channel.js';
import { UsageError, type FailureContext } from './errors.js';
import type { Protection } from '../lib/protocol/tx-security.js';
import { loadRequestFiles, saveResponseFiles, type RequestFile, type ResponseFile } from './files.js';
import { control, exchange, keepAlive, STEP, type ExchangeState, type Protect, type Step } from './request.js';

/** What a connection needs from its environment (implemented by ibac/env.ts). */
export interface Dialer {
  readonly home: Home;
  readonly thisNode: string;
  /** Choose a host of the node and open a channel to it (suspending hosts that fail). */
  dial(node: string, opts: { exclude?: ReadonlySet<string>; pin?: string }): Promise<{ channel: Channel; host: HostChoice }>;
  /** One CAS write of a host's reported load. */
  report(node: string, ip: string, port: number, load: Load): void;
  /** comm.min_compress_size of the config space. */
  compressMin(): number;
  /** The app's client timeout in ms (from the config space); throws for an unknown app. */
  appTimeoutMs(app: string): number;
  /** Whether to ask the server for compression. */
  readonly compress: boolean;
  /** The keys to sign (and encrypt) a transaction to `node` with, or undefined to send it in clear; throws ProtectionError. */
  protect(node: string, opts: SendOptions, ctx: FailureContext): Protect | undefined;
  nextJournal(): string;
  /** Throws when the environment was destroyed. */
  checkLive(): void;
  /** Between transactions: follow a newer config segment (rate-limited). */
  idle(): void;
  forget(conn: IbacConnection): void;
}

export interface SendOptions {
  /** The transaction's journal number (default: generated, unique in this process). */
  journal?: string;
  /** Override the app's client timeout (ms). */
  timeoutMs?: number;
  /** Two-phase commit: the app prepares; `sendCommitOrRollback` decides on this connection. */
  prepare?: boolean;
  /** The global transaction id this transaction is a leg of (multi-transactions; ≤ 64 bytes). */
  gtrid?: string;
  /**
   * Sign this transaction with the node's key (docs/security.md): true or 'required' = abandon
   * (SAFE, IBP_ERR_TX_NOT_GRANTED / IBP_ERR_TX_NO_KEY) rather than send in clear; 'optional' = sign
   * when keys and the server allow it; false / 'none' = do not. Default: the environment's `sign`.
   */
  sign?: boolean | Protection;
  /** Encrypt bodies and files too (implies signing); same values. Default: the environment's `encrypt`. */
  encrypt?: boolean | Protection;
}

/**
 * How a two-phase decision (TX_CONTROL) is protected: sealed like the prepare it decides
 * (docs/security.md). Default: as that journal's prepare on this connection, else the environment's.
 */
export type DecisionOptions = Pick<SendOptions, 'sign' | 'encrypt'>;

export interface ConnectOptions {
  /** Only this host ("ip:port" of the node), whatever its load or suspension. */
  host?: string;
  /** Hosts ("ip:port") not to choose (used by requester when retrying elsewhere). */
  exclude?: ReadonlySet<string>;
}

/** A complete, successful answer. */
export interface IbacResponse {
  body: Buffer;
  /** Response files, written to $IBP_HOME/file. */
  files: ResponseFile[];
  /** What the app returned (0). */
  appRc: number;
  node: string;
  app: string;
  /** "ip:port" of the host that answered. */
  host: string;
  journal: string;
  /** The server's load in its answer. */
  load: Load;
  /** TX_FLAG bits the server granted. */
  granted: number;
  /** Microseconds the app ran on the server. */
  appUs: number;
  /** Milliseconds from the pre-request to the response, as this client saw it. */
  elapsedMs: number;
  commStatus: CommStatus;
}

/** The answer to a commit or rollback. */
export interface ControlAnswer {
  node: string;
  host: string;
  journal: string;
  /** The global transaction id the decision was sent for ('' when none). */
  gtrid: string;
  op: 'COMMIT' | 'ROLLBACK';
  /** What the app's socommit/sorollback returned (0) and wrote. */
  appRc: number;
  body: Buffer;
  load: Load;
  elapsedMs: number;
}

export class IbacConnection {
  readonly node: string;
  readonly app: string;
  readonly #dialer: Dialer;
  readonly #pin: string | undefined;
  #channel: Channel | undefined;
  #host: HostChoice;
  #busy = false;
  #closed = false;
  /** Journals prepared on this connection and not decided yet. */
  readonly #prepared = new Set<string>();
  /** How each journal prepared here was protected (its decision is sealed the same way). */
  readonly #wishes = new Map<string, DecisionOptions>();
  readonly #state: ExchangeState;

  constructor(dialer: Dialer, node: string, app: string, channel: Channel, host: HostChoice, pin?: string) {
    this.#dialer = dialer;
    this.node = node;
    this.app = app;
    this.#channel = channel;
    this.#host = host;
    this.#pin = pin;
    this.#state = {
      tracker: new CommStatusTracker(),
      step: STEP.IDLE,
      onLoad: (load) => this.#dialer.report(this.node, this.#host.ip, this.#host.port, load),
    };
  }

  /** "ip:port" of the host this connection goes to. */
  get host(): string {
    return this.#host.key;
  }

  /** How far the last (or running) transaction got: IBP's IBACGetCommStatus. */
  get commStatus(): CommStatus {
    return this.#state.tracker.status;
  }

  /** Where the running transaction stands (IDLE between transactions). */
  get step(): Step {
    return this.#state.step;
  }

  /** True while the channel is open and not broken. */
  get connected(): boolean {
    return !this.#closed && this.#channel?.alive === true;
  }

  /** Journals prepared (two-phase commit) and not yet committed or rolled back. */
  get prepared(): string[] {
    return [...this.#prepared];
  }

  /**
   * Send a request to the app and wait for its response (IBP's IBACSendRequestAndReceiveResponse).
   * `files` are names of files in $IBP_HOME/file (see createTempFile) or { name, data }; at most 4.
   * Resolves with the response; rejects with a SafeError, SuspiciousError, ServerError, ….
   */
  async sendRequestAndReceiveResponse(app: string, request: Buffer | string, files?: readonly RequestFile[], opts: SendOptions = {}): Promise<IbacResponse> {
    const ctx: FailureContext = { node: this.node, app, host: this.host, journal: opts.journal };
    this.#enter(ctx);
    try {
      const protect = this.#dialer.protect(this.node, opts, ctx);
      const timeoutMs = opts.timeoutMs ?? this.#dialer.appTimeoutMs(app);
      const journal = opts.journal ?? this.#dialer.nextJournal();
      ctx.journal = journal;
      const reqFiles = loadRequestFiles(this.#dialer.home, files);
      const body = typeof request === 'string' ? Buffer.from(request) : request;
      checkSizes(body, reqFiles, ctx);
      this.#dialer.idle();
      // a leg of a global transaction goes to the host its coordinator logged (this connection's)
      const ch = await this.#ready(opts.prepare && opts.gtrid ? this.#pin ?? this.host : this.#pin);
      ctx.host = this.host;
      const flags = (this.#dialer.compress ? TX_FLAG.COMPRESS : 0) | (opts.prepare ? TX_FLAG.PREPARE : 0);
      const t0 = performance.now();
      const r = await exchange(ch, {
        clientNode: this.#dialer.thisNode, app, journal, gtrid: opts.gtrid, request: body, files: reqFiles, flags, timeoutMs, compressMin: this.#dialer.compressMin(), protect,
      }, this.#state, ctx);
      const elapsedMs = performance.now() - t0;
      if (opts.prepare) {
        this.#prepared.add(journal);
        this.#wishes.set(journal, { sign: opts.sign, encrypt: opts.encrypt });
      }
      return {
        body: r.body, files: saveResponseFiles(this.#dialer.home, r.files), appRc: r.appRc, node: this.node, app, host: this.host, journal,
        load: r.load, granted: r.granted, appUs: r.appUs, elapsedMs, commStatus: this.#state.tracker.status,
      };
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Two-phase commit: commit (true) or roll back (false) a transaction prepared on this
   * connection (sent with `prepare: true`). Default journal: the one prepared last.
   */
  async sendCommitOrRollback(commit: boolean, journal?: string, opts?: DecisionOptions): Promise<ControlAnswer> {
    const j = journal ?? this.prepared.at(-1);
    const ctx: FailureContext = { node: this.node, app: this.app, host: this.host, journal: j };
    this.#enter(ctx);
    try {
      if (j === undefined) throw new UsageError(`nothing prepared on the connection to ${this.node} (${this.host}): send with prepare first`, ctx);
      if (!this.#channel?.alive) {
        // the server rolled back when the connection went: nothing can be decided any more
        throw new UsageError(`the connection to ${this.node} (${this.host}) was lost after the prepare of ${j}: the server rolled it back`, ctx);
      }
      const op = commit ? 'COMMIT' : 'ROLLBACK';
      const t0 = performance.now();
      const protect = this.#dialer.protect(this.node, opts ?? this.#wishes.get(j) ?? {}, ctx);
      this.#prepared.delete(j);
      this.#wishes.delete(j);
      const timeoutMs = this.#dialer.appTimeoutMs(this.app);
      const r = await control(this.#channel, op, j, '', timeoutMs, this.#state, ctx, protect);
      return { node: this.node, host: this.host, journal: j, gtrid: '', op, appRc: r.appRc, body: r.body, load: r.load, elapsedMs: performance.now() - t0 };
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Two-phase commit of a global transaction: send the decision for `gtrid` (and its leg's
   * journal). On the connection that prepared it, the server decides from the worker's memory;
   * on any other (this one re-opened to the same pinned host, recovery, an operator) from its
   * participant log. Re-sending a decision already carried out answers OK again (idempotent).
   */
  async sendDecision(commit: boolean, gtrid: string, journal: string, opts?: DecisionOptions): Promise<ControlAnswer> {
    const ctx: FailureContext = { node: this.node, app: this.app, host: this.host, journal };
    this.#enter(ctx);
    try {
      const op = commit ? 'COMMIT' : 'ROLLBACK';
      const protect = this.#dialer.protect(this.node, opts ?? this.#wishes.get(journal) ?? {}, ctx);
      const t0 = performance.now();
      // a decision goes to the host that prepared, never to another host of the node
      const ch = await this.#ready(this.#pin ?? this.host);
      ctx.host = this.host;
      this.#prepared.delete(journal);
      this.#wishes.delete(journal);
      const timeoutMs = this.#dialer.appTimeoutMs(this.app);
      const r = await control(ch, op, journal, gtrid, timeoutMs, this.#state, ctx, protect);
      return { node: this.node, host: this.host, journal, gtrid, op, appRc: r.appRc, body: r.body, load: r.load, elapsedMs: performance.now() - t0 };
    } finally {
      this.#busy = false;
    }
  }

  /** KEEPALIVE on an idle long connection (re-opened first if the server closed it); the server's load. */
  async keepAlive(timeoutMs = 5000): Promise<Load> {
    const ctx: FailureContext = { node: this.node, app: this.app, host: this.host };
    this.#enter(ctx);
    try {
      const ch = await this.#ready();
      return await keepAlive(ch, timeoutMs, this.#state, ctx);
    } finally {
      this.#busy = false;
    }
  }

  /** Close the connection (IBP's IBACDisconnect). Prepared, undecided transactions are rolled back by the server. */
  disconnect(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel?.close();
    this.#channel = undefined;
    this.#prepared.clear();
    this.#wishes.clear();
    this.#dialer.forget(this);
  }

  #enter(ctx: FailureContext): void {
    this.#dialer.checkLive();
    if (this.#closed) throw new UsageError(`the connection to ${this.node} was disconnected: connect again`, ctx);
    if (this.#busy) throw new UsageError(`the connection to ${this.node} (${this.host}) is running a transaction: one at a time per connection (open more connections)`, ctx);
    this.#busy = true;
  }

  /** The open channel; a channel the server closed while idle is replaced (nothing was sent on it). */
  async #ready(pin = this.#pin): Promise<Channel> {
    const ch = this.#channel;
    if (ch?.alive && ch.pending === 0) return ch;
    ch?.breakOff({ reason: 'destroyed', detail: 'replaced' });
    this.#channel = undefined;
    if (this.#prepared.size > 0) {
      // a new channel cannot decide what the old one prepared
      this.#prepared.clear();
      this.#wishes.clear();
    }
    const { channel, host } = await this.#dialer.dial(this.node, { pin });
    this.#channel = channel;
    this.#host = host;
    return channel;
  }
}

/** Frames this client would not accept itself are refused before anything is sent. */
function checkSizes(body: Buffer, files: readonly { name: string; data: Buffer }[], ctx: FailureContext): void {
  if (body.length > CLIENT_LIMITS.maxFrame) throw new UsageError(`request of ${body.length} bytes is over the frame limit of ${CLIENT_LIMITS.maxFrame}`, ctx);
  for (const f of files) {
    if (f.data.length > CLIENT_LIMITS.maxFile) throw new UsageError(`request file ${f.name} of ${f.data.length} bytes is over the file limit of ${CLIENT_LIMITS.maxFile}`, ctx);
  }
}

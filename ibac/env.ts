/**
 * The client environment (IBP's IBACCreateEnvirment / IBACDestroyEnvirment): the client node's
 * ibma.conf (connecting_timeout, retry_connect_timeval, the config space's index key), the
 * attached config space, host choice, and the connections opened through it.
 *
 *   long-lived process:  const env = createEnvironment();  … many connect / requester calls …  env.destroy()
 *   short-lived process: await requester(node, app, msg)   (environment + connection for one call)
 *
 * The environment follows the newest config (ibma republished: new host, app changed) with
 * `checkSwitch()` before it picks a host for a new connection, and before a transaction on a long
 * connection (at most every SWITCH_CHECK_MS) — between transactions, never in the middle of one.
 * It holds no timer: an idle environment keeps no process alive.
 */
import { loadConfigFile } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import { errorText } from '../lib/errors.js';
import { Home, homeOfConf } from '../lib/home.js';
import type { Load } from '../lib/protocol/codec.js';
import { ConfigSpace } from '../lib/shm/config-space.js';
import { Balancer, type HostChoice, type HostState } from './balance.js';
import { Channel } from './channel.js';
import { IbacConnection, type ConnectOptions, type Dialer, type IbacResponse, type SendOptions } from './connect.js';
import { ConnectError, IbacError, NoHostError, PHASE, SafeError, ServerError, UsageError } from './errors.js';
import { createTempFile, type RequestFile, type TempFile } from './files.js';
import { IbacMulti, twoPhaseCommit, type MultiRequest, type TwoPhaseResult } from './multi.js';
import { RC } from '../lib/protocol/result-codes.js';
import { recoverCoordinator, type RecoveryReport } from './recovery.js';
import type { NodeKeyring } from '../lib/node-keys.js';
import { openNodeKeyring } from '../lib/node-keyring.js';
import type { Protection } from '../lib/protocol/tx-security.js';
import { ClientProtection } from './protection.js';

export interface EnvOptions {
  /** The client node's ibma.conf (a name without a path means $IBP_HOME/etc/NAME). Default `ibma.conf`. */
  config?: string;
  /** Ask servers for lz4 compression (granted by their ibas.conf security.compress_flag). Default true. */
  compress?: boolean;
  /** Probability of trying any usable host instead of the least loaded (see ibac/balance.ts). */
  explore?: number;
  /** Randomness for host choice (tests). */
  random?: () => number;
  /**
   * Recover two-phase commits left unfinished by gone processes of this client home, in the
   * background (`env.recovery`; ibac/recovery.ts). Default true (false for `requester()`).
   */
  recover?: boolean;
  /**
   * Sign transactions with this node's key (docs/security.md): 'none' (default), 'optional' (when
   * keys and the server allow), 'required' (never in clear). A call's `sign` option overrides it.
   */
  sign?: Protection;
  /** Encrypt transactions (implies signing): 'none' (default), 'optional', 'required'. */
  encrypt?: Protection;
  /** The node keys (default: the config space's public pairs and the home's private key files, lib/node-keyring.ts). */
  keyring?: NodeKeyring;
}

let journalSeq = 0;

/** Long connections look for a newer config segment at most this often (one shmget + one atomic read). */
const SWITCH_CHECK_MS = 100;

export class IbacEnv {
  /** The client node's name (this_node of ibma.conf, as the config space says). */
  readonly thisNode: string;
  /** The home whose file/ folder holds attached files. */
  readonly home: Home;
  readonly confFile: string;
  readonly connectingTimeoutMs: number;
  readonly retryConnectMs: number;
  readonly #space: ConfigSpace;
  readonly #balancer: Balancer;
  readonly #compress: boolean;
  readonly #protection: ClientProtection;
  readonly #connections = new Set<IbacConnection>();
  #destroyed = false;
  readonly #dialer: Dialer;
  #cache: { generation: number; minCompress: number; timeouts: Map<string, number> } | undefined;
  #switchCheckedAt = 0;
  /** The recovery pass started with the environment (resolved at once when `recover: false`). */
  readonly recovery: Promise<RecoveryReport | undefined>;

  private constructor(confFile: string, opts: EnvOptions) {
    const conf = loadConfigFile(IbmaConf, confFile, 'ibma');
    this.confFile = confFile;
    this.home = homeOfConf(confFile);
    this.connectingTimeoutMs = Math.max(1, Math.round(conf.ibac.connecting_timeout * 1000));
    this.retryConnectMs = Math.max(1, Math.round(conf.ibac.retry_connect_timeval * 1000));
    this.#space = ConfigSpace.openKey(conf.shm.index_key);
    try {
      this.thisNode = this.#space.header().thisNode;
    } catch (e) {
      this.#space.close();
      throw e;
    }
    this.#compress = opts.compress ?? true;
    const ring = opts.keyring ?? openNodeKeyring({ space: this.#space, home: this.home });
    this.#protection = new ClientProtection(() => ring, opts, opts.keyring ? 'the keyring given to the environment' : `the config space's node keys and ${this.home.dir('keys')}`);
    this.#balancer = new Balancer(this.#space, { retryConnectMs: this.retryConnectMs, explore: opts.explore, random: opts.random });
    this.#dialer = this.#makeDialer();
    this.recovery = opts.recover === false ? Promise.resolve(undefined) : recoverCoordinator(this).catch(() => undefined);
  }

  /** Run coordinator recovery now (`ibpsend --recover`): finish the two-phase commits of gone processes. */
  recover(schedule?: readonly number[]): Promise<RecoveryReport> {
    this.#checkLive();
    return recoverCoordinator(this, schedule);
  }

  /** A new journal number, unique in this process. */
  nextJournal(): string {
    return this.#dialer.nextJournal();
  }

  /** Create an environment from the client node's ibma.conf (its agent must be running). */
  static create(opts: EnvOptions = {}): IbacEnv {
    const home = new Home();
    return new IbacEnv(home.confPath(opts.config ?? 'ibma.conf'), opts);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Generation of the config segment in use. */
  get generation(): number {
    this.#checkLive();
    return this.#space.generation;
  }

  /** Connections open through this environment. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Follow the newest config segment if ibma published one; true when it switched. */
  checkSwitch(): boolean {
    this.#checkLive();
    return this.#space.checkSwitch();
  }

  /** The node's hosts with their reported load and suspension (ops, tests). */
  hosts(node: string): HostState[] {
    this.#checkLive();
    return this.#balancer.states(node);
  }

  /** Connect to a node for an app (IBP's IBACConnect): a long connection until `disconnect()`. */
  async connect(node: string, app: string, opts: ConnectOptions = {}): Promise<IbacConnection> {
    this.#checkLive();
    this.#dialer.appTimeoutMs(app); // an unknown app fails here, before any connect
    const { channel, host } = await this.#dialer.dial(node, { exclude: opts.exclude, pin: opts.host });
    if (this.#destroyed) {
      channel.close();
      this.#checkLive();
    }
    const conn = new IbacConnection(this.#dialer, node, app, channel, host, opts.host);
    this.#connections.add(conn);
    return conn;
  }

  /**
   * Connect, send, receive, disconnect (IBP's IBACRequester: a short connection). A failure that
   * is SAFE and due to the host (connection lost before the request, server stopping) is retried
   * once on each other host of the node: the caller only sees it when every host failed.
   */
  async requester(node: string, app: string, request: Buffer | string, files?: readonly RequestFile[], opts: SendOptions & ConnectOptions = {}): Promise<IbacResponse> {
    const tried = new Set<string>(opts.exclude ?? []);
    let last: IbacError | undefined;
    for (;;) {
      let conn: IbacConnection;
      try {
        conn = await this.connect(node, app, { host: opts.host, exclude: tried });
      } catch (e) {
        // every host tried now: the host-side failure seen before is the better explanation
        if (last && e instanceof NoHostError) throw last;
        throw e;
      }
      try {
        return await conn.sendRequestAndReceiveResponse(app, request, files, opts);
      } catch (e) {
        if (opts.host === undefined && retryElsewhere(e)) {
          tried.add(conn.host);
          last = e as IbacError;
          continue;
        }
        throw e;
      } finally {
        conn.disconnect();
      }
    }
  }

  /** Connect to several nodes at once (IBP's IBACMultiConnect); per-item failures are kept, never thrown. */
  multiConnect(requests: readonly MultiRequest[]): Promise<IbacMulti> {
    this.#checkLive();
    return IbacMulti.connect(this, requests);
  }

  /** Two-phase commit across the requests' nodes (see ibac/multi.ts twoPhaseCommit). */
  twoPhaseCommit(requests: readonly MultiRequest[]): Promise<TwoPhaseResult> {
    this.#checkLive();
    return twoPhaseCommit(this, requests);
  }

  /** A new empty temporary file `(fileId)_(10 random).tmp` in $IBP_HOME/file (IBP's IBPCreateTempFile). */
  createTempFile(fileId: string, data?: Buffer | string): TempFile {
    return createTempFile(this.home, fileId, data);
  }

  /** Close every connection and detach the config space (IBP's IBACDestroyEnvirment). Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const c of [...this.#connections]) c.disconnect();
    this.#connections.clear();
    this.#space.close();
  }

  /** What is read from the config space on every transaction, kept per generation. */
  #cached(): { minCompress: number; timeouts: Map<string, number> } {
    const generation = this.#space.generation;
    if (this.#cache?.generation !== generation) {
      this.#cache = { generation, minCompress: this.#space.header().minCompressSize, timeouts: new Map() };
    }
    return this.#cache;
  }

  #checkLive(): void {
    if (this.#destroyed) throw new UsageError('the ibac environment was destroyed: create a new one');
  }

  #makeDialer(): Dialer {
    const env = this;
    return {
      home: this.home,
      thisNode: this.thisNode,
      compress: this.#compress,
      protect: (node, o, ctx) => this.#protection.protect(node, o, ctx),
      dial: (node, o) => this.#dial(node, o.exclude, o.pin),
      report: (node: string, ip: string, port: number, load: Load) => {
        if (!env.#destroyed) env.#balancer.report(node, ip, port, load);
      },
      compressMin: () => this.#cached().minCompress,
      appTimeoutMs: (app: string) => {
        this.#checkLive();
        const cache = this.#cached();
        let ms = cache.timeouts.get(app);
        if (ms === undefined) {
          const a = this.#space.app(app);
          if (!a) throw new UsageError('', { app }, 'IBP_ERR_APP_UNKNOWN', { app: `${app} (client node ${this.thisNode})` });
          if (a.invalid) throw new UsageError('', { app }, 'IBP_ERR_APP_INVALID', { app });
          ms = Math.max(1, Math.round(a.timeout * 1000));
          cache.timeouts.set(app, ms);
        }
        return ms;
      },
      nextJournal: () => `${Date.now().toString(36)}-${process.pid.toString(36)}-${(++journalSeq).toString(36)}`,
      checkLive: () => this.#checkLive(),
      idle: () => {
        const now = performance.now();
        if (now - this.#switchCheckedAt < SWITCH_CHECK_MS) return;
        this.#switchCheckedAt = now;
        this.#space.checkSwitch();
      },
      forget: (conn: IbacConnection) => {
        this.#connections.delete(conn);
      },
    };
  }

  /** Choose a host and connect; a host that fails is suspended and the next one tried. */
  async #dial(node: string, exclude: ReadonlySet<string> | undefined, pin: string | undefined): Promise<{ channel: Channel; host: HostChoice }> {
    this.#checkLive();
    this.#space.checkSwitch();
    this.#switchCheckedAt = performance.now();
    const tried = new Set<string>(exclude ?? []);
    const attempts: string[] = [];
    let lastHost: string | undefined;
    let lastError: unknown;
    for (;;) {
      let host: HostChoice;
      try {
        host = this.#balancer.choose(node, { exclude: tried, pin });
      } catch (e) {
        if (attempts.length > 0 && e instanceof NoHostError && e.code === 'IBP_ERR_CLIENT_NO_HOST') {
          throw new ConnectError(attempts, { node, host: lastHost }, { cause: lastError });
        }
        throw e;
      }
      tried.add(host.key);
      try {
        const channel = await Channel.open(host.ip, host.port, this.connectingTimeoutMs);
        return { channel, host };
      } catch (e) {
        if (!this.#destroyed) this.#balancer.suspend(node, host.ip, host.port);
        attempts.push(`${host.key}: ${errorText(e)}`);
        lastHost = host.key;
        lastError = e;
        if (pin !== undefined) throw new ConnectError(attempts, { node, host: host.key }, { cause: e });
      }
    }
  }
}

/** A SAFE failure caused by the host (not by the request): worth trying another host. */
function retryElsewhere(e: unknown): boolean {
  if (e instanceof SafeError) return e.reason === 'closed' || e.reason === 'reset' || e.reason === 'server-error';
  if (e instanceof ServerError) return e.phase === PHASE.SAFE && (e.rc === RC.POOL_STOPPING || e.rc === RC.POOL_NO_SPACE);
  return false;
}

/** Create an environment (IBP's IBACCreateEnvirment). */
export function createEnvironment(opts: EnvOptions = {}): IbacEnv {
  return IbacEnv.create(opts);
}

/**
 * A short-lived call: environment, connection, one transaction, disconnect, destroy (IBP's
 * "short process" + IBACRequester).
 */
export async function requester(node: string, app: string, request: Buffer | string, files?: readonly RequestFile[], opts: SendOptions & ConnectOptions & EnvOptions = {}): Promise<IbacResponse> {
  const env = IbacEnv.create({ recover: false, ...opts });
  try {
    return await env.requester(node, app, request, files, opts);
  } finally {
    env.destroy();
  }
}

/**
 * Who may send what: the negotiation of signed and encrypted transactions (docs/security.md).
 *
 * ibas.conf `security.sign_flag` / `encrypt_flag` are each none, optional or required (0 = none,
 * 1 = optional, IBP's spelling). The server grants SIGN (and ENCRYPT) in its PRE_ANSWER when the
 * client asked and sealed its pre-request; a client decides from its own settings before it hears
 * the server (so it may pipeline) and honours the answer: a SIGN not granted means the rest goes
 * in clear (client optional) or the exchange is abandoned before the request leaves (client
 * required). Encryption implies signing.
 *
 * {@link TxGate} is the server's judge of one pre-request: it either throws (a forged, replayed or
 * undecodable handshake: ERROR, connection closed), or returns the grant with the exchange's seal
 * and, when the client may not go on, a refusal (answered in the PRE_ANSWER: SAFE, nothing runs,
 * the connection stays in step).
 */
import { LRUCache } from 'lru-cache';
import { IbpError } from '../errors.js';
import type { NodeKeyring } from '../node-keys.js';
import { TX_FLAG, type PreRequest } from './codec.js';
import { HELLO_RESUMED, helloResumedOk, helloSignedBy, serverKeys, TxSeal, type AgreementCache, type Hello } from './tx-crypto.js';

export type Protection = 'none' | 'optional' | 'required';
export type ProtectionSetting = 0 | 1 | Protection;

export interface TxPolicy {
  sign: Protection;
  encrypt: Protection;
  /** A sealed pre-request whose time is further than this from the server's clock is refused. */
  replayWindowMs: number;
  /** Apps the HTTP adapter serves unsigned even when signing is required ('*' = all). */
  httpUnsignedAllow: readonly string[];
}

export const DEFAULT_REPLAY_WINDOW_S = 60;

export function protectionOf(v: ProtectionSetting | undefined): Protection {
  if (v === undefined || v === 0) return 'none';
  if (v === 1) return 'optional';
  return v;
}

/** The policy of an ibas.conf security section. */
export function policyOf(sec: { sign_flag: ProtectionSetting; encrypt_flag: ProtectionSetting; replay_window?: number; http_unsigned_allow?: string[] }): TxPolicy {
  const encrypt = protectionOf(sec.encrypt_flag);
  let sign = protectionOf(sec.sign_flag);
  // encryption implies signing: an encrypting server can always sign
  if (encrypt === 'required') sign = 'required';
  else if (encrypt === 'optional' && sign === 'none') sign = 'optional';
  return { sign, encrypt, replayWindowMs: Math.round((sec.replay_window ?? DEFAULT_REPLAY_WINDOW_S) * 1000), httpUnsignedAllow: sec.http_unsigned_allow ?? [] };
}

/** TX_FLAG bits a policy can grant. */
export function grantableOf(p: TxPolicy): number {
  return (p.sign !== 'none' ? TX_FLAG.SIGN : 0) | (p.encrypt !== 'none' ? TX_FLAG.ENCRYPT : 0);
}

/** May the HTTP adapter (which cannot sign) serve `app`? Undefined: yes; else the refusal. */
export function httpRefusal(p: TxPolicy, app: string): IbpError | undefined {
  if (p.sign !== 'required') return undefined;
  if (p.httpUnsignedAllow.includes('*') || p.httpUnsignedAllow.includes(app)) return undefined;
  return new IbpError('IBP_ERR_TX_UNPROTECTED', { what: 'signed', flag: 'sign_flag (HTTP: add the app to security.http_unsigned_allow to serve it unsigned)' });
}

export interface GateResult {
  /** Security bits of the grant (SIGN, ENCRYPT). */
  granted: number;
  /** The exchange's seal when it is protected. */
  seal?: TxSeal;
  /** Why the transaction may not run (answered in the PRE_ANSWER). */
  refusal?: IbpError;
}

/**
 * Where the gate remembers the signed hellos it accepted, until they fall out of the replay
 * window. An ibas shares one across its workers (ibas/replay-cache.ts, SysV shm), so a replay is
 * refused whichever worker it reaches; {@link LocalNonceMemory} serves one process.
 */
export interface NonceMemory {
  /**
   * Remember the hello (nonce, client KCV) until `expiresAt` (ms since the epoch). False: it is
   * remembered already (a replay). May throw (IBP_ERR_TX_REPLAY_CACHE_FULL) rather than forget.
   */
  remember(nonce: Buffer, clientKcv: string, expiresAt: number, now: number): boolean;
}

/** A nonce memory of this process only (a foreground server, a gate without a shared cache). */
export class LocalNonceMemory implements NonceMemory {
  readonly #seen: LRUCache<string, number>;

  constructor(max = 100_000) {
    this.#seen = new LRUCache({ max, ttlAutopurge: false });
  }

  remember(nonce: Buffer, clientKcv: string, expiresAt: number, now: number): boolean {
    const key = `${nonce.toString('hex')}/${clientKcv}`;
    const exp = this.#seen.get(key);
    if (exp !== undefined && exp > now) return false;
    this.#seen.set(key, expiresAt, { ttl: Math.max(1, expiresAt - now) });
    return true;
  }
}

/** The server's judge of pre-requests; `nonces` remembers the hellos it accepted (shared by an ibas's workers). */
export class TxGate {
  readonly policy: TxPolicy;
  readonly #keyring: () => NodeKeyring | undefined;
  /** Made on the first signed hello when none was given (a server that signs nothing never needs one). */
  #nonces: NonceMemory | undefined;

  constructor(policy: TxPolicy, keyring: () => NodeKeyring | undefined, nonces?: NonceMemory) {
    this.policy = policy;
    this.#keyring = keyring;
    this.#nonces = nonces;
  }

  /**
   * Judge a pre-request and its hello (undefined: not sealed); a TX_CONTROL is judged the same way
   * (flags SIGN | ENCRYPT when sealed, clientNode the node entitled to decide). `cache` is the connection's
   * key-agreement cache. Throws IBP_ERR_TX_* / IBP_ERR_PROTO_FRAME when the exchange cannot go on.
   */
  judge(pre: Pick<PreRequest, 'flags' | 'clientNode'>, hello: Hello | undefined, cache: AgreementCache, now = Date.now()): GateResult {
    const p = this.policy;
    const askSign = (pre.flags & TX_FLAG.SIGN) !== 0;
    const askEncrypt = (pre.flags & TX_FLAG.ENCRYPT) !== 0;
    if (askSign !== (hello !== undefined)) {
      throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: askSign ? 'SIGN asked but the pre-request is not sealed' : 'a sealed pre-request must ask SIGN' });
    }
    if (askEncrypt && !askSign) throw new IbpError('IBP_ERR_PROTO_FRAME', { detail: 'ENCRYPT asked without SIGN (encryption needs the signed handshake)' });
    if (hello === undefined || p.sign === 'none') {
      // unprotected: the hello of a server that grants nothing is ignored (the client honours the grant)
      if (p.sign === 'required') return { granted: 0, refusal: new IbpError('IBP_ERR_TX_UNPROTECTED', { what: 'signed', flag: 'sign_flag' }) };
      return { granted: 0 };
    }
    const ring = this.#keyring();
    if (!ring) throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: 'this server holds no node keys (ibma has not published them yet): it cannot open a signed transaction' });
    const own = ring.localKey(hello.serverKcv, now);
    if (!own) throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `key ${hello.serverKcv} is not (or no longer) a key of server node ${ring.localNode}: the client must use the key published now` });
    const skew = Math.abs(now - hello.timeMs);
    if (skew > p.replayWindowMs) {
      throw new IbpError('IBP_ERR_TX_REPLAY', { type: 'PRE_REQUEST', detail: `its time is ${Math.round(skew / 1000)} s off this server's clock (security.replay_window ${p.replayWindowMs / 1000} s): an old pre-request, or a client clock to fix` });
    }
    const granted = TX_FLAG.SIGN | (askEncrypt && p.encrypt !== 'none' ? TX_FLAG.ENCRYPT : 0);
    // the PRE_ANSWER goes signed only; the session encrypts from the next packet on
    const seal = new TxSeal('server', serverKeys(hello, own, cache), own.kcv, hello.clientKcv, false);
    seal.requireEncrypted = (granted & TX_FLAG.ENCRYPT) !== 0;
    const peer = ring.peerKey(pre.clientNode, hello.clientKcv, now);
    if (peer.refusal !== undefined) {
      const node = `node ${pre.clientNode}`;
      const refusal = peer.refusal === 'UNKNOWN_NODE' ? new IbpError('IBP_ERR_TX_UNKNOWN_NODE', { node: pre.clientNode })
        : peer.refusal === 'UNKNOWN_KEY' ? new IbpError('IBP_ERR_TX_FOREIGN_KEY', { kcv: hello.clientKcv, node, detail: `not among the keys published for ${node}` })
        : new IbpError('IBP_ERR_TX_KEY_EXPIRED', { kcv: hello.clientKcv, node });
      return { granted, seal, refusal };
    }
    if (hello.version === HELLO_RESUMED) {
      const v = cache.verified;
      if (!v || v.clientKcv !== hello.clientKcv || v.node !== pre.clientNode) {
        throw new IbpError('IBP_ERR_TX_TAMPERED', { type: 'PRE_REQUEST', detail: 'a resumed hello without a verified signed one of this client key on this connection' });
      }
      if (!helloResumedOk(hello, cache)) throw new IbpError('IBP_ERR_TX_TAMPERED', { type: 'PRE_REQUEST', detail: `its resumption MAC does not verify (key ${hello.clientKcv} of node ${pre.clientNode})` });
    } else {
      if (!helloSignedBy(hello, peer.key)) {
        throw new IbpError('IBP_ERR_TX_TAMPERED', { type: 'PRE_REQUEST', detail: `its signature does not verify with key ${hello.clientKcv} of node ${pre.clientNode}` });
      }
      cache.verified = { clientKcv: hello.clientKcv, node: pre.clientNode };
    }
    // remembered once authentic (forged hellos cannot fill the memory), until its time leaves the window
    if (!(this.#nonces ??= new LocalNonceMemory()).remember(hello.nonce, hello.clientKcv, hello.timeMs + p.replayWindowMs + 1000, now)) {
      throw new IbpError('IBP_ERR_TX_REPLAY', { type: 'PRE_REQUEST', detail: 'its nonce was seen before' });
    }
    if (p.encrypt === 'required' && (granted & TX_FLAG.ENCRYPT) === 0) {
      return { granted, seal, refusal: new IbpError('IBP_ERR_TX_UNPROTECTED', { what: 'encrypted', flag: 'encrypt_flag' }) };
    }
    return { granted, seal };
  }

  /** The node this server is (its keyring's), undefined while it holds no keys. */
  localNode(): string | undefined {
    return this.#keyring()?.localNode;
  }
}

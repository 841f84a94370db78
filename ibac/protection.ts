/**
 * Which transactions of this client are signed (and encrypted), with which keys: the client's
 * half of the negotiation of lib/protocol/tx-security.ts. Decided before anything is sent (so a
 * pipelining client needs no answer first): from the call's `sign` / `encrypt` options, else the
 * environment's, and the node keys at hand. ibac/request.ts then honours the server's grant.
 */
import type { NodeKeyring } from '../lib/node-keys.js';
import type { Protection } from '../lib/protocol/tx-security.js';
import { ProtectionError, type FailureContext } from './errors.js';
import type { Protect } from './request.js';

export interface ProtectionWish {
  sign?: boolean | Protection;
  encrypt?: boolean | Protection;
}

function level(v: boolean | Protection | undefined, dflt: Protection): Protection {
  if (v === undefined) return dflt;
  if (v === true) return 'required';
  if (v === false) return 'none';
  return v;
}

export class ClientProtection {
  readonly #keyring: () => NodeKeyring | undefined;
  readonly #defaults: { sign: Protection; encrypt: Protection };
  readonly #where: string;

  /** `where` names the key source in messages (e.g. the keyring file). */
  constructor(keyring: () => NodeKeyring | undefined, defaults: ProtectionWish, where: string) {
    this.#keyring = keyring;
    this.#defaults = { sign: level(defaults.sign, 'none'), encrypt: level(defaults.encrypt, 'none') };
    this.#where = where;
  }

  /** The keys for a transaction to `node`, undefined to send it in clear; throws ProtectionError when required and impossible. */
  protect(node: string, wish: ProtectionWish, ctx: FailureContext, now = Date.now()): Protect | undefined {
    const encrypt = level(wish.encrypt, this.#defaults.encrypt);
    let sign = level(wish.sign, this.#defaults.sign);
    if (encrypt === 'required') sign = 'required';
    else if (encrypt === 'optional' && sign === 'none') sign = 'optional';
    if (sign === 'none') return undefined;
    const ring = this.#keyring();
    const own = ring?.sendingKey(now);
    const server = ring?.peerSendingKey(node, now);
    if (!ring || !own || !server) {
      if (sign === 'optional') return undefined;
      const detail = !ring ? `this client has no node keys (${this.#where})`
        : !own ? `node ${ring.localNode} has no key usable now (${this.#where})`
        : `server node ${node} has no published key usable now (${this.#where})`;
      throw new ProtectionError('IBP_ERR_TX_NO_KEY', { detail }, ctx);
    }
    return { own, server, sign, encrypt };
  }
}

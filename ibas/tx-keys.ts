/**
 * Where an ibas worker gets the node keys that sign and encrypt transactions, and the gate that
 * judges pre-requests with them (lib/protocol/tx-security.ts): the keyring over the worker's
 * config space (public pairs ibma publishes) and the private key files ibma writes in the home's
 * keys/ (lib/node-keyring.ts). It follows the space the app resolver is attached to. `nonces` is
 * the replay cache the workers of the ibas share (ibas/replay-cache.ts); without one, the gate
 * remembers hellos in this process only.
 */
import type { IbasConf } from '../lib/config/ibas-conf.js';
import type { Home } from '../lib/home.js';
import type { NodeKeyring } from '../lib/node-keys.js';
import { openNodeKeyring } from '../lib/node-keyring.js';
import { policyOf, TxGate, type NonceMemory } from '../lib/protocol/tx-security.js';
import type { ConfigSpace } from '../lib/shm/config-space.js';

/** `space` gives the worker's config space, or undefined while there is none. */
export function txGateOf(conf: IbasConf, home: Home, space: () => ConfigSpace | undefined, nonces?: NonceMemory): TxGate {
  let ring: NodeKeyring | undefined;
  let of: ConfigSpace | undefined;
  return new TxGate(policyOf(conf.security), () => {
    const sp = space();
    if (sp === undefined) return undefined;
    if (sp !== of) {
      ring = openNodeKeyring({ space: sp, home });
      of = sp;
    }
    return ring;
  }, nonces);
}

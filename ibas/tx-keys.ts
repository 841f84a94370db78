/**
 * Where an ibas worker gets the node keys that sign and encrypt transactions, and the gate that
 * judges pre-requests with them (lib/protocol/tx-security.ts). The keyring source is chosen here
 * only: today the home's keys/node-keyring.json (lib/node-keyring-file.ts); ibma's config-space
 * key reader replaces it once it exists.
 */
import { errorText } from '../lib/errors.js';
import type { IbasConf } from '../lib/config/ibas-conf.js';
import type { Home } from '../lib/home.js';
import type { Logger } from '../lib/log.js';
import { homeKeyring } from '../lib/node-keyring-file.js';
import { policyOf, TxGate } from '../lib/protocol/tx-security.js';

export function txGateOf(conf: IbasConf, home: Home, log: Logger): TxGate {
  const policy = policyOf(conf.security);
  const ring = homeKeyring(home, (e) => log.error({ err: errorText(e) }, `node keys unreadable , reason[${errorText(e)}] , the last good keys stay in use`));
  return new TxGate(policy, ring);
}

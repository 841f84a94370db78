/**
 * The one key of ibma.conf an ibas worker needs: `shm.index_key`, where the node's config space
 * is (lib/shm/config-space.ts `ConfigSpace.open`). Read without the schema validator — ajv and
 * TypeBox would cost every worker 5–8 MB of RSS — and checked against the same range the schema
 * uses ({@link INDEX_KEY_RANGE}, lib/config/ibma-conf.ts). The whole file is validated by ibma
 * (which publishes the space), by the ibas manager (heartbeat) and by `ibas -a check`; ibac
 * validates it too (ibac/env.ts).
 */
import { IbpError } from '../errors.js';
import { readConfigJson } from './json-text.js';

/** shm.index_key of ibma.conf: a positive 31-bit SysV key (the schema's bounds too). */
export const INDEX_KEY_RANGE = { minimum: 1, maximum: 0x7fffffff } as const;

/** shm.index_key of an ibma.conf; IBP_ERR_CFG_NOT_FOUND / _PARSE / _INVALID as the full load says them. */
export function readIndexKey(file: string): number {
  const conf = readConfigJson(file, 'ibma');
  const shm = conf !== null && typeof conf === 'object' ? (conf as { shm?: unknown }).shm : undefined;
  if (shm === null || typeof shm !== 'object') throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/shm', detail: 'is required' });
  const key = (shm as { index_key?: unknown }).index_key;
  if (key === undefined) throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/shm/index_key', detail: 'is required' });
  if (typeof key !== 'number' || !Number.isInteger(key)) throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/shm/index_key', detail: 'must be integer' });
  if (key < INDEX_KEY_RANGE.minimum) throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/shm/index_key', detail: `must be >= ${INDEX_KEY_RANGE.minimum}` });
  if (key > INDEX_KEY_RANGE.maximum) throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: '/shm/index_key', detail: `must be <= ${INDEX_KEY_RANGE.maximum}` });
  return key;
}

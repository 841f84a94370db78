/**
 * What must hold before ibas may start, checked the same way by `ibas -a check` and
 * `ibas -a start` (nginx -t and nginx agree): a start refuses, with the same message and a
 * non-zero exit, whatever the check refuses.
 *
 *   ibas.conf           valid (loadInstance did it) and consistent (dynamic pool bounds)
 *   ibma.conf           present and valid: it is how workers find the config space (without it
 *                       every call would be answered POOL_NO_SPACE)
 *   metrics             a listener off loopback needs a token (lib/metrics-server.ts)
 *   so/ folder          warned about when missing (apps cannot be loaded), not refused;
 *                       refused when group or others may write it (anyone there could plant
 *                       code: lib/so-folder.ts)
 */
import fs from 'node:fs';
import { IbpError } from '../lib/errors.js';
import { loadConfigFile } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import type { Instance } from './instance.js';
import { checkSoFolder } from '../lib/so-folder.js';
import { checkMetricsPolicy } from '../lib/metrics-server.js';

/** The lines `-a check` prints; throws the first refusal (an IbpError naming the file and key). */
export function preflight(inst: Instance): string[] {
  const c = inst.conf;
  const d = c.mpm.DYNAMIC_WORKERPOOL;
  if (c.mpm.mode === 'DYNAMIC_WORKERPOOL' && d.min_idle_count > d.max_idle_count) {
    throw new IbpError('IBP_ERR_CFG_INVALID', { file: inst.confFile, key: '/mpm/DYNAMIC_WORKERPOOL', detail: `min_idle_count ${d.min_idle_count} is above max_idle_count ${d.max_idle_count}` });
  }
  checkMetricsPolicy(c.metrics, inst.confFile);
  const lines = [`${inst.confFile}: ok (listen ${c.server.ip}:${c.server.port}, mode ${c.mpm.mode}, max_count ${c.mpm.max_count})`];
  const ibma = loadConfigFile(IbmaConf, inst.ibmaConfFile, 'ibma');
  lines.push(`${inst.ibmaConfFile}: ok (node ${ibma.this_node}, index_key 0x${ibma.shm.index_key.toString(16)})`);
  if (!fs.existsSync(inst.home.dir('so'))) lines.push(`WARN : ${inst.home.dir('so')} does not exist: apps cannot be loaded`);
  else checkSoFolder(inst.home.dir('so'));
  return lines;
}

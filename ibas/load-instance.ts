/**
 * Read and validate ibas.conf into an {@link Instance} (the CLI, hence the manager). A worker does
 * not come here: it gets the conf its manager validated (ibas/handover.ts) and calls
 * {@link instanceOf}, so ajv and TypeBox stay out of its memory.
 */
import path from 'node:path';
import { loadConfigFile } from '../lib/config/load.js';
import { IbasConf } from '../lib/config/ibas-conf.js';
import { instanceOf, type Instance } from './instance.js';

export function loadInstance(confFile: string): Instance {
  const file = path.resolve(confFile);
  return instanceOf(file, loadConfigFile(IbasConf, file, 'ibas'));
}

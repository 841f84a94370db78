/**
 * `ibms -a init [--ip IP] [--port PORT]`: create the home's folders, the default config files,
 * the admin credentials (full and read-only), the package-signing key pair
 * (keys/package-signing.key 0600, .pub 0644) and, for the nodes an existing home already has, their
 * node key pairs (keys/node_<N>.keys 0600: the migration of a home from before node keys; without
 * it the worker creates each when first needed). Idempotent, IBP's way: what exists is kept and reported as
 * `WARN : <path> exist !`.
 */
import fs from 'node:fs';
import { defaultIbmsConf } from '../lib/config/ibms-conf.js';
import { HOME_DIRS, type Home } from '../lib/home.js';
import { ADMIN_CREDENTIAL_FILE, ADMIN_RO_CREDENTIAL_FILE, ensureCredentialFile } from './credentials.js';
import { PackageSigner, SIGNING_KEY_FILE, SIGNING_PUB_FILE } from '../lib/package-signing.js';

import { IBMS_CONF } from './paths.js';
import { IbmsConf } from '../lib/config/ibms-conf.js';
import { loadConfigFile } from '../lib/config/load.js';
import { errorText } from '../lib/errors.js';
import { dataFiles, loadData } from './persist.js';
import { NodeKeys } from './node-keys.js';

export { IBMS_CONF, PID_FILE } from './paths.js';

function writeNew(file: string, text: string, mode = 0o644): boolean {
  try {
    fs.writeFileSync(file, text, { flag: 'wx', mode });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Returns the lines to print. */
export function initHome(home: Home, opts: { ip?: string; port?: number; confFile?: string } = {}): string[] {
  const out: string[] = [];
  for (const d of HOME_DIRS) {
    const dir = home.dir(d);
    if (fs.existsSync(dir)) {
      out.push(`WARN : ${dir} exist !`);
    } else {
      fs.mkdirSync(dir, { recursive: true, mode: d === 'keys' ? 0o700 : 0o755 });
      out.push(`mkdir ${dir} ok${d === 'so' ? " , don't forget copy .so files in it" : ''}`);
    }
  }
  home.ensure();
  const conf = defaultIbmsConf(opts.ip, opts.port);
  const confFile = opts.confFile ?? home.etc(IBMS_CONF);
  const files: [string, string][] = [
    [confFile, `${JSON.stringify(conf, null, 2)}\n`],
    [home.confPath(conf.config.nodes), `${JSON.stringify({ nodes: [] }, null, 2)}\n`],
    [home.confPath(conf.config.apps), `${JSON.stringify({ apps: [] }, null, 2)}\n`],
    [home.confPath(conf.config.projects), `${JSON.stringify({ projects: [] }, null, 2)}\n`],
  ];
  for (const [file, text] of files) out.push(writeNew(file, text) ? `${file} created` : `WARN : ${file} exist !`);
  for (const name of [ADMIN_CREDENTIAL_FILE, ADMIN_RO_CREDENTIAL_FILE]) {
    const cred = home.keys(name);
    out.push(ensureCredentialFile(cred).created ? `${cred} created (mode 0600)` : `WARN : ${cred} exist !`);
  }
  const keyFile = home.keys(SIGNING_KEY_FILE);
  const pubFile = home.keys(SIGNING_PUB_FILE);
  out.push(PackageSigner.loadOrCreate(keyFile, pubFile).created ? `${keyFile} created (Ed25519 package-signing key, mode 0600) , public key ${pubFile}` : `WARN : ${keyFile} exist !`);
  out.push(...ensureNodeKeys(home, confFile));
  return out;
}

/** Node key pairs for the nodes the home's config files hold (none in a new home). */
function ensureNodeKeys(home: Home, confFile: string): string[] {
  let nodes: string[];
  try {
    const conf = loadConfigFile(IbmsConf, confFile, 'ibms');
    nodes = [...loadData(dataFiles(home, conf)).store.nodes.keys()];
  } catch (e) {
    return [`WARN : node keys not checked: ${errorText(e)} (the start creates missing ones once the files load)`];
  }
  const keys = new NodeKeys(home);
  const out: string[] = [];
  for (const n of nodes) {
    const file = keys.fileOf(n);
    out.push(keys.ensureNode(n, Date.now(), false).created ? `${file} created (node key pair of ${n}, mode 0600)` : `WARN : ${file} exist !`);
  }
  return out;
}

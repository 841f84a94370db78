/**
 * `ibma -a init --node N --ibms-ip IP --ibms-port P --credential C [--index-key K]`: create the
 * home's folders and etc/ibma.conf (IBP: idempotent, an existing file is kept with
 * `WARN : <file> exist !`). The index key defaults to the home's key block (lib/shm/keys.ts), so
 * several agents on one machine never collide. The file holds the node credential: mode 0600.
 */
import fs from 'node:fs';
import { IbpError } from '../lib/errors.js';
import { validate } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import { HOME_DIRS, type Home } from '../lib/home.js';
import { homeKeyBase, KEY_SLOT } from '../lib/shm/keys.js';

export interface InitOptions {
  node: string;
  ibmsIp: string;
  ibmsPort: number;
  credential: string;
  indexKey?: number;
  minCompressSize?: number;
  connectingTimeout?: number;
  retryConnectTimeval?: number;
}

/** The config `-a init` writes, validated (a bad --node or --ibms-ip fails here, naming the key). */
export function defaultConf(home: Home, o: InitOptions, file: string): IbmaConf {
  const conf: IbmaConf = {
    this_node: o.node,
    ibms: { ip: o.ibmsIp, port: o.ibmsPort },
    credential: o.credential,
    comm: { min_compress_size: o.minCompressSize ?? 1024 },
    ibac: { connecting_timeout: o.connectingTimeout ?? 10, retry_connect_timeval: o.retryConnectTimeval ?? 60 },
    shm: { index_key: o.indexKey ?? homeKeyBase(home.root) + KEY_SLOT.INDEX },
    log: { level: 'info', main: `log/ibma_${o.node}_main.log`, event: 'log/event.log' },
  };
  return validate(IbmaConf, conf, file);
}

/** ibma.conf as text, with IBP-style comments on every key. */
export function confText(c: IbmaConf): string {
  const j = JSON.stringify;
  return `// ibma.conf: the node agent of node ${c.this_node} (written by \`ibma -a init\`; JSON with comments)
{
  "this_node": ${j(c.this_node)}, // this node's name in the registry
  "ibms": { "ip": ${j(c.ibms.ip)}, "port": ${c.ibms.port} }, // the registry
  // this node's credential (\`ibms -s node_credential --node ${c.this_node}\`); keep this file 0600
  "credential": ${j(c.credential)},
  "comm": {
    "min_compress_size": ${c.comm.min_compress_size} // bodies of at least this many bytes travel lz4-compressed
  },
  "ibac": {
    "connecting_timeout": ${c.ibac.connecting_timeout}, // seconds a client waits for a TCP connect
    "retry_connect_timeval": ${c.ibac.retry_connect_timeval} // seconds a host stays suspended after a failed connect
  },
  "shm": {
    "index_key": ${c.shm.index_key} // SysV key of the public index segment (0x${c.shm.index_key.toString(16)}, from this home's key block)
  },
  "log": {
    "level": ${j(c.log.level ?? 'info')}, // trace, debug, info, warn, error, fatal
    "main": ${j(c.log.main)}, // the agent's log (relative to the home)
    "event": ${j(c.log.event)} // the home's event log (warn and above)
  }
  // "agent": { "watch_wait": 30, "reconnect_min": 0.2, "reconnect_max": 5, "heartbeat_interval": 5, "gc_interval": 1 }
}
`;
}

/** Create the folders and the config file. Returns the lines to print (IBP's init output). */
export function initHome(home: Home, confFile: string, o: InitOptions): string[] {
  const lines: string[] = [];
  const existed = new Set(HOME_DIRS.filter((d) => fs.existsSync(home.dir(d))));
  const conf = defaultConf(home, o, confFile);
  home.ensure();
  for (const d of HOME_DIRS) {
    if (existed.has(d)) lines.push(`WARN : ${home.dir(d)} exist !`);
    else lines.push(`mkdir ${home.dir(d)} ok${d === 'so' ? ' , ibma installs the app packages of this node here' : ''}`);
  }
  if (fs.existsSync(confFile)) {
    lines.push(`WARN : ${confFile} exist !`);
    return lines;
  }
  try {
    fs.writeFileSync(confFile, confText(conf), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: home.root, detail: `cannot write ${confFile}: ${(e as Error).message}` }, { cause: e });
  }
  lines.push(`${confFile} created`);
  return lines;
}

/**
 * The server's heartbeat to ibms (lib/heartbeat.ts): `{role:'ibas', node, ip, port, pid, load}`
 * every monitor.heartbeat_interval, with the node credential of the home's ibma.conf, so
 * `ibms -s sessions` lists this server. `load` is the number of workers busy with a connection
 * (the same `working` every answer carries). ibas serves whether ibms is up or not.
 */
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { loadConfigFile } from '../lib/config/load.js';
import { IbmaConf } from '../lib/config/ibma-conf.js';
import { Heartbeat } from '../lib/heartbeat.js';
import { RegistryClient } from '../lib/registry-client.js';

export interface HeartbeatInfo {
  ip: string;
  port: number;
  load(): { working: number; total: number };
  /** The manager's /metrics address when it needs no token (the ibms console reads rates there). */
  metrics?: string;
}

/** The server's heartbeat, from the home's ibma.conf; undefined (logged) when it cannot be read. */
export function serverHeartbeat(ibmaConfFile: string, info: HeartbeatInfo, log: Logger): Heartbeat | undefined {
  try {
    const c = loadConfigFile(IbmaConf, ibmaConfFile, 'ibma');
    const client = new RegistryClient({ ip: c.ibms.ip, port: c.ibms.port, credential: c.credential });
    return new Heartbeat({
      client,
      body: () => ({ role: 'ibas', node: c.this_node, ip: info.ip, port: info.port, pid: process.pid, load: info.load().working, ...(info.metrics ? { metrics: info.metrics } : {}) }),
      log,
    });
  } catch (e) {
    log.warn(`heartbeat to ibms disabled , reason[${errorText(e)}]`);
    return undefined;
  }
}

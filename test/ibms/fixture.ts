/**
 * In-process fixture for ibms API tests: a temporary home made by `initHome`, a Registry over
 * it and the fastify server (not listening; tests use inject()).
 */
import fs from 'node:fs';
import type { Test } from 'tap';
import { Home } from '../../lib/home.js';
import { loadConfigFile } from '../../lib/config/load.js';
import { IbmsConf } from '../../lib/config/ibms-conf.js';
import { silentLogger } from '../../lib/log.js';
import { initHome } from '../../ibms/init.js';
import { Registry } from '../../ibms/registry.js';
import { buildServer, type IbmsServer } from '../../ibms/server.js';
import type { ConfigData } from '../../ibms/store.js';
import { lz4Decompress } from '../../lib/codec/lz4.js';

export interface Fixture {
  home: Home;
  conf: IbmsConf;
  reg: Registry;
  app: IbmsServer;
  admin: string;
  auth: { authorization: string };
  /** inject() with the admin credential and a JSON body; answers the parsed JSON. */
  call(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
}

export function writeData(home: Home, data: Partial<ConfigData>): void {
  if (data.nodes) fs.writeFileSync(home.etc('ibp_nodes.conf'), JSON.stringify({ nodes: data.nodes }));
  if (data.apps) fs.writeFileSync(home.etc('ibp_apps.conf'), JSON.stringify({ apps: data.apps }));
  if (data.projects) fs.writeFileSync(home.etc('ibp_projects.conf'), JSON.stringify({ projects: data.projects }));
}

export async function makeFixture(t: Test, opts: { data?: Partial<ConfigData>; conf?: (c: IbmsConf) => void; beforeReady?: (app: IbmsServer) => void; onRoute?: (method: string, url: string, access: unknown) => void } = {}): Promise<Fixture> {
  const home = new Home(t.testdir());
  initHome(home, { ip: '127.0.0.1', port: 16001 });
  if (opts.data) writeData(home, opts.data);
  if (opts.conf) {
    const c = loadConfigFile(IbmsConf, home.etc('ibms.conf'));
    opts.conf(c);
    fs.writeFileSync(home.etc('ibms.conf'), JSON.stringify(c));
  }
  const conf = loadConfigFile(IbmsConf, home.etc('ibms.conf'));
  const reg = new Registry({ home, conf, log: silentLogger() });
  const app = buildServer(reg, { onRoute: opts.onRoute });
  opts.beforeReady?.(app);
  await app.ready();
  t.teardown(() => app.close());
  const admin = fs.readFileSync(home.keys('admin.credential'), 'utf8').trim();
  const auth = { authorization: `Bearer ${admin}` };
  const call: Fixture['call'] = async (method, url, body, headers = {}) => {
    const res = await app.inject({
      method,
      url,
      headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
    });
    let raw = res.rawPayload;
    if (res.headers['content-encoding'] === 'lz4') raw = lz4Decompress(raw, 1 << 30);
    let json: unknown;
    try {
      json = raw.length ? JSON.parse(raw.toString()) : undefined;
    } catch {
      json = raw.toString();
    }
    return { status: res.statusCode, json, headers: res.headers as Record<string, unknown> };
  };
  return { home, conf, reg, app, admin, auth, call };
}

/** A small cluster: ECIF serves echo_project to CORE; CRM stands alone; BATCH serves batch. */
export const SAMPLE: ConfigData = {
  nodes: [
    { node: 'ECIF', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18001 }, { ip: '127.0.0.2', port: 18001 }], kvs: { hsm: 'model-a' } },
    { node: 'CORE', invalid: 0, hosts: [{ ip: '127.0.0.3', port: 10601 }], kvs: {} },
    { node: 'CRM', invalid: 0, hosts: [], kvs: {} },
    { node: 'BATCH', invalid: 0, hosts: [{ ip: '127.0.0.4', port: 19001 }], kvs: {} },
  ],
  apps: [
    { app: 'ibp_test_echo', desc: 'echo', bin: 'ibp_test_echo.so', timeout: 50, timeout2: 0, invalid: 0, server_node: '' },
    { app: 'ibp_test_file', desc: 'file echo', bin: 'ibp_test_file.so', timeout: 120, timeout2: 0, invalid: 0, server_node: '' },
    { app: 'batch_run', desc: 'batch', bin: 'batch_run.so', timeout: 10, timeout2: 30, invalid: 0, server_node: 'BATCH' },
  ],
  projects: [
    { project: 'echo_project', server_nodes: ['ECIF'], client_nodes: ['CORE'], apps: ['ibp_test_echo', 'ibp_test_file'] },
    { project: 'batch', server_nodes: ['BATCH'], client_nodes: ['CORE'], apps: ['batch_run'] },
  ],
};

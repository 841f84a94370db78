/**
 * The namespace cluster the multi-host tests share, built the way an operator builds one:
 *
 *   h1   the registry (ibms :16001) and the client node CHANNEL (its agent), the admin home
 *        (etc/ibp_cluster.conf, keys) from which the cluster scripts run
 *   h2   ECIF server host: agent + ibas :18001 (+ ibcmd :26001, sshd :22 when asked)
 *   h3   ECIF server host: the same
 *
 * Project P1: server node ECIF (h2, h3), client node CHANNEL, app ibp_test_echo.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { readPid } from '../../lib/pidfile.js';
import { ROOT, waitFor } from '../helpers/procs.js';
import { must, NetnsCluster, patchJson, PORTS, type NetHost } from '../helpers/netns.js';

export const APP = 'ibp_test_echo';
const FAST_AGENT = { watch_wait: 2, reconnect_min: 0.05, reconnect_max: 0.4, heartbeat_interval: 0.5, gc_interval: 0.2 };

export interface ServerHost {
  host: NetHost;
  home: string;
  ibasPid(): number | undefined;
}

export interface Project {
  c: NetnsCluster;
  reg: { host: NetHost; home: string };
  client: { host: NetHost; home: string; ibmaConf: string; indexKey: number };
  servers: ServerHost[];
  admin: string;
  ibms(args: string[]): Promise<string>;
}

/**
 * The shared opening of a multi-host test file: a 10-minute budget (a whole cluster per file), N
 * hosts, the project, sshd on the server hosts. Undefined (with a skip naming the reason) where
 * this machine cannot make network namespaces; `sshSkip` says why ssh is not available.
 */
export async function projectOrSkip(t: Test, hosts: number): Promise<{ p: Project; sshSkip: string | undefined } | undefined> {
  t.setTimeout(600_000);
  const c = NetnsCluster.up(t, hosts);
  if (typeof c === 'string') {
    t.skip(`multi-host cluster tests: ${c}`);
    return undefined;
  }
  const p = await startProject(t, c);
  return { p, sshSkip: withSsh(p) };
}

export async function startProject(t: Test, c: NetnsCluster): Promise<Project> {
  const [h1, h2, h3] = [c.host('h1'), c.host('h2'), c.host('h3')];
  const regHome = c.home('reg');
  const ibms = async (args: string[]): Promise<string> => must(await c.tool(h1, regHome, 'ibms', args), `ibms ${args.join(' ')}`);
  await ibms(['-a', 'init', '--ip', h1.ip, '--port', String(PORTS.ibms)]);
  fs.copyFileSync(path.join(ROOT, 'build', 'apps', 'ibp_test_echo.so'), path.join(regHome, 'so', 'ibp_test_echo.so'));
  must(await c.tool(h1, regHome, 'ibms', ['-a', 'start'], 120_000), 'ibms -a start');
  await ibms(['-a', 'add_node', '--node', 'ECIF']);
  await ibms(['-a', 'add_node', '--node', 'CHANNEL']);
  for (const h of [h2, h3]) await ibms(['-a', 'add_node_host', '--node', 'ECIF', '--ip', h.ip, '--port', String(PORTS.ibas)]);
  await ibms(['-a', 'add_app', '--app', APP, '--desc', 'echo', '--bin', 'ibp_test_echo.so', '--timeout', '5']);
  await ibms(['-a', 'add_project', '--project', 'P1', '--server-nodes', 'ECIF', '--client-nodes', 'CHANNEL', '--apps', APP]);
  await ibms(['-a', 'distribute_config']);
  const cred = async (node: string): Promise<string> => (await ibms(['-s', 'node_credential', '--node', node])).trim();

  const agentHome = async (host: NetHost, name: string, node: string): Promise<string> => {
    const home = c.home(name);
    must(await c.tool(host, home, 'ibma', ['-a', 'init', '--node', node, '--ibms-ip', h1.ip, '--ibms-port', String(PORTS.ibms), '--credential', await cred(node)]), `ibma -a init (${name})`);
    patchJson(path.join(home, 'etc', 'ibma.conf'), { agent: FAST_AGENT, ibac: { connecting_timeout: 2, retry_connect_timeval: 2 } });
    // the release this host runs (the cluster scripts put <home>/current/scripts first on the PATH)
    fs.symlinkSync(ROOT, path.join(home, 'current'));
    return home;
  };

  const servers: ServerHost[] = [];
  await Promise.all([h2, h3].map(async (host) => {
    const home = await agentHome(host, `ecif-${host.name}`, 'ECIF');
    must(await c.tool(host, home, 'ibas', ['-a', 'init', '--ip', host.ip, '--port', String(PORTS.ibas), '--max-count', '2']), `ibas -a init (${host.name})`);
    must(await c.tool(host, home, 'ibma', ['-a', 'start'], 120_000), `ibma -a start (${host.name})`);
    must(await c.tool(host, home, 'ibas', ['-a', 'start'], 120_000), `ibas -a start (${host.name})`);
    servers.push({ host, home, ibasPid: () => readPid(path.join(home, 'run', 'ibas.pid')) });
  }));
  servers.sort((a, b) => a.host.name.localeCompare(b.host.name));

  const clientHome = await agentHome(h1, 'channel', 'CHANNEL');
  must(await c.tool(h1, clientHome, 'ibma', ['-a', 'start'], 120_000), 'ibma -a start (channel)');
  const ibmaConf = path.join(clientHome, 'etc', 'ibma.conf');
  const indexKey = (JSON.parse(fs.readFileSync(ibmaConf, 'utf8')) as { shm: { index_key: number } }).shm.index_key;
  await waitFor('both ECIF hosts in the client\'s config space', () => {
    const space = ConfigSpace.openKey(indexKey);
    try {
      return space.hosts('ECIF').length === 2;
    } finally {
      space.close();
    }
  }, 30_000, 50);
  for (const s of servers) await waitFor(`the package on ${s.host.name}`, () => fs.existsSync(path.join(s.home, 'so', 'ibp_test_echo.so')), 30_000, 50);

  const admin = c.home('admin');
  fs.mkdirSync(path.join(admin, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(admin, 'keys'), { recursive: true, mode: 0o700 });
  return { c, reg: { host: h1, home: regHome }, client: { host: h1, home: clientHome, ibmaConf, indexKey }, servers, admin, ibms };
}

/** sshd on every server host, and the admin's key + known_hosts for them. */
export function withSsh(p: Project): string | undefined {
  for (const s of p.servers) {
    const r = p.c.sshd(s.host, s.home);
    if (r.code === 3) return r.stderr.trim();
    if (r.code !== 0) throw new Error(`sshd on ${s.host.name}: ${r.stderr}`);
  }
  const { key, knownHosts } = p.c.sshFiles();
  fs.copyFileSync(key, path.join(p.admin, 'keys', 'ssh_id_ed25519'));
  fs.chmodSync(path.join(p.admin, 'keys', 'ssh_id_ed25519'), 0o600);
  fs.copyFileSync(knownHosts, path.join(p.admin, 'etc', 'ssh_known_hosts'));
  return undefined;
}

/** An ibcmd agent in every server host's home (one credential, the admin's), allowed the tool scripts. */
export async function withIbcmd(p: Project): Promise<void> {
  let cred: string | undefined;
  for (const s of p.servers) {
    must(await p.c.tool(s.host, s.home, 'ibcmd', ['-a', 'init', '--ip', s.host.ip, '--port', String(PORTS.ibcmd)]), `ibcmd -a init (${s.host.name})`);
    patchJson(path.join(s.home, 'etc', 'ibcmd.conf'), { white_list: ['ibas.sh *', 'ibma.sh *', 'ibp_unpack.sh *', 'hostname'] });
    const credFile = path.join(s.home, 'keys', 'ibcmd.credential');
    if (cred === undefined) cred = fs.readFileSync(credFile, 'utf8');
    else fs.writeFileSync(credFile, cred, { mode: 0o600 });
    must(await p.c.tool(s.host, s.home, 'ibcmd', ['-a', 'start']), `ibcmd -a start (${s.host.name})`);
  }
  fs.writeFileSync(path.join(p.admin, 'keys', 'ibcmd.credential'), cred!, { mode: 0o600 });
}

/** Write the admin's cluster file for a transport; returns its path. */
export function clusterConf(p: Project, transport: 'ssh' | 'ibcmd'): string {
  const file = path.join(p.admin, 'etc', `ibp_cluster_${transport}.conf`);
  const col = transport === 'ssh' ? 'ssh' : `ibcmd:${PORTS.ibcmd}`;
  fs.writeFileSync(file, `# node ip user transport\n${p.servers.map((s) => `ECIF ${s.host.ip} root ${col}`).join('\n')}\n`);
  return file;
}

export interface LoadSummary { calls: number; ok: number; failed: number; hosts: Record<string, number>; errors: Record<string, number>; firstErrors: string[] }

/** A client loop on the client host (short connections through ibac) until stopped. */
export class ClientLoad {
  readonly #stop: string;
  readonly #progress: string;
  readonly #done: Promise<LoadSummary>;

  constructor(p: Project, maxSeconds = 180, maxCalls = 200_000) {
    const dir = fs.mkdtempSync(path.join(p.c.root, 'load-'));
    this.#stop = path.join(dir, 'stop');
    this.#progress = path.join(dir, 'progress');
    const child = p.c.spawn(p.client.host, [process.execPath, path.join(ROOT, 'test', 'fixtures', 'netns', 'client-loop.mjs'),
      p.client.ibmaConf, 'ECIF', APP, this.#stop, this.#progress, String(maxSeconds), String(maxCalls)], { IBP_HOME: p.client.home });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    this.#done = new Promise((resolve, reject) => child.on('close', (code) => {
      try {
        resolve(JSON.parse(out) as LoadSummary);
      } catch {
        reject(new Error(`client loop exited ${code}: ${out}\n${err}`));
      }
    }));
  }

  calls(): number {
    try {
      return Number(fs.readFileSync(this.#progress, 'utf8').split(' ')[0]);
    } catch {
      return 0;
    }
  }

  /** Wait until `n` more calls were made than now. */
  async more(n: number, timeoutMs = 60_000): Promise<void> {
    const from = this.calls();
    await waitFor(`${n} more client calls`, () => this.calls() >= from + n, timeoutMs, 20);
  }

  async stop(): Promise<LoadSummary> {
    fs.writeFileSync(this.#stop, '');
    return this.#done;
  }
}

/**
 * Real clusters for end-to-end tests, built the way an operator does it: a registry home
 * (`ibms -a init / -a start`, app packages copied into its so/), the cluster config given through
 * the ibms CLI (add_node, add_node_host, add_app, add_project, distribute_config), one home per
 * node host with its agent (`ibma -a init` with the node credential, `-a start`) and, for server
 * hosts, an ibas (`ibas -a init / -a start`) whose apps ibma installed from the registry.
 *
 * Every home lives under a private temporary folder of the test process (see privateDir), named
 * `<name>-home` (no home path is a prefix of another, so reapHome never reaches a neighbour), and
 * is reaped at teardown (processes killed, SysV objects removed). Everything listens on the
 * test's own 127.x.y.z address.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { parseJsonText } from '../../lib/config/load.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { freePort, gone, loopbackIp, reapHome, ROOT, runTool, waitFor, type RunResult } from './procs.js';

/**
 * A temporary folder of this test process alone, removed at teardown. Unlike t.testdir() (a fixed
 * path per test file) it cannot collide with another run of the same file in the same tree —
 * homes and their SysV key blocks (derived from the path) stay private to this run.
 */
export function privateDir(t: Test, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ibp-${prefix}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Loop timings of agents in tests (fast watch, reconnect and gc). */
export const FAST_AGENT = { watch_wait: 2, reconnect_min: 0.05, reconnect_max: 0.4, heartbeat_interval: 0.5, gc_interval: 0.2 };

export const APPS_DIR = path.join(ROOT, 'build', 'apps');

export interface AppDef {
  app: string;
  /** .so file name in build/apps (copied into the registry's so/). */
  bin: string;
  /** Client timeout, seconds. */
  timeout: number;
  timeout2?: number;
  desc?: string;
}

export interface ProjectDef {
  project: string;
  serverNodes: string[];
  clientNodes: string[];
  apps: string[];
}

export interface AgentOptions {
  /** Home folder name (`<name>-home`); default the node name in lower case. */
  name?: string;
  /** Client settings of its ibma.conf, seconds. */
  ibac?: { connecting_timeout?: number; retry_connect_timeval?: number };
  /** comm.min_compress_size of its ibma.conf. */
  minCompressSize?: number;
  /** A patch of its ibma.conf (deep-merged), e.g. `{ metrics: {...} }`. */
  ibma?: Record<string, unknown>;
}

export interface NodeHome {
  name: string;
  node: string;
  home: string;
  ibmaConf: string;
  indexKey: number;
  /** Run a tool of bin/ with this home's IBP_HOME. */
  run(tool: string, args: string[], timeoutMs?: number): Promise<RunResult>;
}

export interface ServerHome extends NodeHome {
  ip: string;
  port: number;
  /** "ip:port" */
  hostKey: string;
  ibasConf: string;
}

/** Deep-merge plain objects (for config patches). */
function merge(into: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(patch)) {
    const cur = into[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) merge(cur as Record<string, unknown>, v as Record<string, unknown>);
    else into[k] = v;
  }
  return into;
}

function patchJsonFile(file: string, patch: Record<string, unknown>): void {
  const conf = parseJsonText(fs.readFileSync(file, 'utf8'), file) as Record<string, unknown>;
  fs.writeFileSync(file, `${JSON.stringify(merge(conf, patch), null, 2)}\n`, { mode: 0o600 });
}

function must(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export class Cluster {
  readonly t: Test;
  readonly ip: string;
  readonly root: string;
  readonly registryHome: string;
  registryPort = 0;
  readonly #credentials = new Map<string, string>();
  readonly #homes: string[] = [];

  private constructor(t: Test, ip: string) {
    this.t = t;
    this.ip = ip;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-cluster-'));
    // one teardown, in this order: the daemons' logs when the test failed, every home reaped
    // (processes, SysV objects), then the folder
    t.teardown(async () => {
      if (!t.passing()) process.stderr.write(this.logTails());
      await Promise.all(this.#homes.map((h) => reapHome(h)));
      fs.rmSync(this.root, { recursive: true, force: true });
    });
    this.registryHome = this.#newHome('reg');
  }

  /** The last lines of every log file of every home (for a failed test). */
  logTails(lines = 30): string {
    let out = '';
    try {
      for (const h of fs.readdirSync(this.root)) {
        const dir = path.join(this.root, h, 'log');
        if (!fs.existsSync(dir)) continue;
        for (const f of fs.readdirSync(dir)) {
          const file = path.join(dir, f);
          if (!fs.statSync(file).isFile()) continue;
          const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
          out += `----- ${h}/log/${f}\n${text}\n`;
        }
      }
    } catch (e) {
      out += `(logs not readable: ${(e as Error).message})\n`;
    }
    return out;
  }

  /** A running registry with the packages of `bins` (file names in build/apps) in its so/. */
  static async start(t: Test, opts: { ip?: string; bins?: string[]; ibms?: Record<string, unknown> } = {}): Promise<Cluster> {
    const c = new Cluster(t, opts.ip ?? loopbackIp());
    c.registryPort = await freePort(c.ip);
    must(await c.ibms(['-a', 'init', '--ip', c.ip, '--port', String(c.registryPort)]), 'ibms -a init');
    if (opts.ibms) patchJsonFile(path.join(c.registryHome, 'etc', 'ibms.conf'), opts.ibms);
    for (const bin of opts.bins ?? []) fs.copyFileSync(path.join(APPS_DIR, bin), path.join(c.registryHome, 'so', bin));
    must(await c.ibms(['-a', 'start'], 120_000), 'ibms -a start');
    return c;
  }

  #newHome(name: string): string {
    const home = path.join(this.root, `${name}-home`);
    fs.mkdirSync(home, { recursive: true });
    this.#homes.push(home);
    return home;
  }

  /** Run the ibms CLI against the registry home. */
  ibms(args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return runTool('ibms', args, { home: this.registryHome, timeoutMs });
  }

  /** Run ibms commands in order; each must succeed. */
  async admin(...commands: string[][]): Promise<void> {
    for (const args of commands) must(await this.ibms(args), `ibms ${args.join(' ')}`);
  }

  /** Run ibms commands concurrently (independent ones); each must succeed. */
  async adminAll(commands: string[][]): Promise<void> {
    const results = await Promise.all(commands.map((args) => this.ibms(args)));
    results.forEach((r, i) => must(r, `ibms ${commands[i]!.join(' ')}`));
  }

  /**
   * The usual config through the CLI: nodes (with their hosts "ip:port"), apps, projects, then
   * distribute_config.
   */
  async configure(o: { nodes: Record<string, string[]>; apps: AppDef[]; projects: ProjectDef[] }): Promise<void> {
    await this.adminAll(Object.keys(o.nodes).map((n) => ['-a', 'add_node', '--node', n]));
    const hostCmds = Object.entries(o.nodes).flatMap(([n, hosts]) => hosts.map((h) => {
      const [ip, port] = h.split(':');
      return ['-a', 'add_node_host', '--node', n, '--ip', ip!, '--port', port!];
    }));
    const appCmds = o.apps.map((a) => ['-a', 'add_app', '--app', a.app, '--desc', a.desc ?? a.app, '--bin', a.bin, '--timeout', String(a.timeout), ...(a.timeout2 !== undefined ? ['--timeout2', String(a.timeout2)] : [])]);
    await this.adminAll([...hostCmds, ...appCmds]);
    await this.adminAll(o.projects.map((p) => ['-a', 'add_project', '--project', p.project, '--server-nodes', p.serverNodes.join(' '), '--client-nodes', p.clientNodes.join(' '), '--apps', p.apps.join(' ')]));
    await this.admin(['-a', 'distribute_config']);
  }

  async credential(node: string): Promise<string> {
    let c = this.#credentials.get(node);
    if (!c) {
      c = must(await this.ibms(['-s', 'node_credential', '--node', node]), `ibms -s node_credential --node ${node}`).trim();
      this.#credentials.set(node, c);
    }
    return c;
  }

  /**
   * A node home with its agent started. `ibac` sets the client settings of its ibma.conf
   * (connecting_timeout, retry_connect_timeval, seconds).
   */
  async agent(node: string, o: AgentOptions = {}): Promise<NodeHome> {
    const n = await this.#initAgent(node, o);
    must(await n.run('ibma', ['-a', 'start'], 120_000), `ibma -a start (${n.name})`);
    return n;
  }

  async #initAgent(node: string, o: AgentOptions): Promise<NodeHome> {
    const name = o.name ?? node.toLowerCase();
    const home = this.#newHome(name);
    const run = (tool: string, args: string[], timeoutMs = 60_000) => runTool(tool, args, { home, timeoutMs });
    must(await run('ibma', ['-a', 'init', '--node', node, '--ibms-ip', this.ip, '--ibms-port', String(this.registryPort), '--credential', await this.credential(node)]), `ibma -a init (${name})`);
    const ibmaConf = path.join(home, 'etc', 'ibma.conf');
    patchJsonFile(ibmaConf, {
      agent: FAST_AGENT,
      ...(o.ibac ? { ibac: o.ibac } : {}),
      ...(o.minCompressSize !== undefined ? { comm: { min_compress_size: o.minCompressSize } } : {}),
      ...o.ibma,
    });
    const conf = parseJsonText(fs.readFileSync(ibmaConf, 'utf8'), ibmaConf) as { shm: { index_key: number } };
    return { name, node, home, ibmaConf, indexKey: conf.shm.index_key, run };
  }

  /**
   * A server host of a node: its agent plus an ibas on `port` (default: a free port of the test's
   * address), started together (the workers find their apps once the agent has installed them).
   * The ibas.conf made by `ibas -a init` is patched with `ibas` before the start.
   */
  async server(node: string, o: AgentOptions & { port?: number; maxCount?: number; ibas?: Record<string, unknown>; start?: boolean } = {}): Promise<ServerHome> {
    const agent = await this.#initAgent(node, o);
    const port = o.port ?? (await freePort(this.ip));
    must(await agent.run('ibas', ['-a', 'init', '--ip', this.ip, '--port', String(port), '--max-count', String(o.maxCount ?? 2)]), `ibas -a init (${agent.name})`);
    const ibasConf = path.join(agent.home, 'etc', 'ibas.conf');
    if (o.ibas) patchJsonFile(ibasConf, o.ibas);
    const s: ServerHome = { ...agent, ip: this.ip, port, hostKey: `${this.ip}:${port}`, ibasConf };
    const starts: Promise<unknown>[] = [agent.run('ibma', ['-a', 'start'], 120_000).then((r) => must(r, `ibma -a start (${agent.name})`))];
    if (o.start !== false) starts.push(this.startServer(s));
    await Promise.all(starts);
    return s;
  }

  async startServer(s: ServerHome): Promise<void> {
    must(await s.run('ibas', ['-a', 'start'], 120_000), `ibas -a start (${s.name})`);
  }

  /** Poll the node's config space until `cond` holds (e.g. the server nodes and hosts are there). */
  async waitSpace<T>(n: NodeHome, what: string, cond: (space: ConfigSpace) => T, timeoutMs = 30_000): Promise<NonNullable<T>> {
    return waitFor(`${what} in the config space of ${n.name}`, () => {
      const space = ConfigSpace.openKey(n.indexKey);
      try {
        return cond(space);
      } finally {
        space.close();
      }
    }, timeoutMs, 50);
  }

  /** Wait until ibma installed the packages in the server's so/. */
  async waitPackages(s: ServerHome, bins: string[], timeoutMs = 30_000): Promise<void> {
    await waitFor(`packages ${bins.join(' ')} in ${s.name}/so`, () => bins.every((b) => fs.existsSync(path.join(s.home, 'so', b))), timeoutMs, 50);
  }
}

/** Pids of the ibas processes (manager and workers) of a server home. */
export function ibasPids(s: ServerHome): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8');
      const ours = cmd.includes(s.home) || env.split('\0').includes(`IBP_HOME=${s.home}`);
      if (ours && /ibas/.test(cmd) && !/ibma/.test(cmd)) out.push(Number(d));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

/**
 * Freeze a server's ibas (SIGSTOP): the manager first, so that it cannot spawn a worker in
 * between, then every ibas process of the home, listed again until no new one appears.
 * Returns the frozen pids.
 */
export function freezeIbas(s: ServerHome): number[] {
  const frozen = new Set<number>();
  try {
    const manager = Number(fs.readFileSync(path.join(s.home, 'run', 'ibas.pid'), 'utf8').trim());
    if (manager > 0) {
      process.kill(manager, 'SIGSTOP');
      frozen.add(manager);
    }
  } catch {
    // no manager pid file: freeze what is there
  }
  for (;;) {
    const fresh = ibasPids(s).filter((p) => !frozen.has(p));
    if (fresh.length === 0) return [...frozen];
    for (const p of fresh) {
      try {
        process.kill(p, 'SIGSTOP');
      } catch {
        // gone
      }
      frozen.add(p);
    }
  }
}

/** Kill a server's ibas for good (SIGKILL, frozen or not) and wait until no ibas process of the home is left. */
export async function killIbas(s: ServerHome, timeoutMs = 15_000): Promise<void> {
  const killed = new Set<number>();
  await waitFor(`every ibas process of ${s.name} to be gone`, () => {
    for (const p of ibasPids(s)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
      killed.add(p);
    }
    return ibasPids(s).length === 0 && [...killed].every(gone);
  }, timeoutMs, 20);
}


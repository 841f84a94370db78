/**
 * The ibms command line: IBP's `ibms -f ibms.conf -a <action> | -s <show>` with long options and
 * `--json`. Daemon control (init, start, stop, kill, check, -s status) works on the home; every
 * other command talks to the running daemon over REST with the home's admin credential.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Command } from 'commander';
import stripJsonComments from 'strip-json-comments';
import sjson from 'secure-json-parse';
import { createProgram, runCli, badArg, intArg, listArg, printRows, type Column } from '../lib/cli.js';
import type { IbmsConf } from '../lib/config/ibms-conf.js';
import type { AppWithPackage, NodeConf, ProjectConf } from '../lib/config/model.js';
import { isDaemonChild, killDaemon, startDaemon, stopDaemon } from '../lib/daemon.js';
import { IbpError } from '../lib/errors.js';
import { Home, homeOfConf } from '../lib/home.js';
import { runningPid } from '../lib/pidfile.js';
import { showLogs } from '../lib/log-tail.js';
import { inspectPackage } from './package-check.js';
import { keyState } from '../lib/node-keys.js';
import { IbmsClient } from './client.js';
import { readAdminCredential } from './credentials.js';
import { IBMS_CONF, PID_FILE } from './paths.js';
import type { Session } from './sessions.js';

export interface CliOptions {
  conf?: string;
  action?: string;
  show?: string;
  node?: string;
  invalid?: string;
  keyExp?: string;
  ip?: string;
  port?: string;
  app?: string;
  desc?: string;
  bin?: string;
  timeout?: string;
  timeout2?: string;
  serverNode?: string;
  project?: string;
  serverNodes?: string;
  clientNodes?: string;
  apps?: string;
  key?: string;
  value?: string;
  host?: string;
  user?: string;
  transport?: string;
  admin?: boolean;
  adminRo?: boolean;
  addr?: string;
  tokenFile?: string;
  json?: boolean;
  follow?: boolean;
  lines?: string;
  strict?: boolean;
}

const USAGE = `
IBP usage (every command of IBP's ibms):
  ibms -f ibms.conf -a start | stop | kill | check | init [--ip IP] [--port PORT]
                    -s status
                    -s sessions | nodes | apps | projects | nodes_kv | nodes_changed   [--node N | --app A | --project P]
                    -s node_credential --node N
                    -s node_keys [--node N]
                    -a add_node | set_node --node N [--invalid 0|1] [--key-exp K]
                    -a remove_node --node N
                    -a add_node_host | remove_node_host --node N --ip IP --port P
                    -a add_app | set_app --app A --desc D --bin B.so --timeout T [--timeout2 T2] [--invalid 0|1] [--server-node N]
                    -a update_app --app A
                    -a remove_app --app A
                    -a add_project | set_project --project P --server-nodes "N1 N2" --client-nodes "N3" --apps "A1 A2"
                    -a remove_project --project P
                    -a add_node_kv | set_node_kv --node N --key K --value V
                    -a remove_node_kv --node N --key K
                    -a save_config | distribute_config | build_config
                    -a download_config --node N
  Scale-out / scale-in (steps, idempotent and resumable; see docs/cluster.md):
                    -a scale_out | scale_in --node N --host IP[:PORT] [--user U] [--transport ssh|ibcmd]
                    -a rotate_credential --node N | --admin | --admin-ro
                    -a rotate_node_key --node N   (new pair enabled after security.new_key_enable_elapse,
                                                   old pairs refused after old_key_disable_elapse)
  (set_* change only the options given; --json prints JSON for scripts;
   IBP's other names work too: -a commit_config, -s changed_nodes, -s cnodes_changed)
Commands that talk to the daemon use --addr, else $IBMS_ADDR (ip:port or http://ip:port), else
server.ip:port of ibms.conf; and --token-file, else $IBMS_TOKEN (the credential itself), else
keys/admin.credential of the home (keys/admin-ro.credential works for -s commands).
kill -TERM (monitor pid) : stop        kill -USR1 (monitor pid) : reopen logs
`;

interface Ctx {
  o: CliOptions;
  home: Home;
  confFile: string;
  json: boolean;
  out: (s: string) => void;
  /** ibms.conf; `full` validates every key (check, start). */
  conf(full?: boolean): Promise<IbmsConf>;
  client(): Promise<IbmsClient>;
}

function need(o: CliOptions, key: keyof CliOptions, flag: string, what: string): string {
  const v = o[key];
  if (v === undefined || v === '') throw badArg(flag, `is required for ${what}`);
  return String(v);
}

/**
 * The patterns of lib/config/model.ts (NAME_PATTERN, BinName), repeated here so that a command
 * does not load TypeBox (~250 module files) before doing anything; test/ibms/cli-args.test.ts
 * pins them equal to the model's.
 */
export const CLI_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
export const CLI_BIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,126}\.(so|mjs)$/;
const NAME_RE = CLI_NAME_RE;
function nameArg(flag: string, value: string): string {
  if (!NAME_RE.test(value)) throw badArg(flag, `"${value}" is not a name (letters, digits, _ - ., at most 64)`);
  return value;
}

function namesArg(flag: string, value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return listArg(value).map((n) => nameArg(flag, n));
}

function flagArg(flag: string, value: string | undefined): 0 | 1 | undefined {
  return value === undefined ? undefined : (intArg(flag, value, 0, 1) as 0 | 1);
}

function secondsArg(flag: string, value: string | undefined, min0 = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (!min0 && n === 0) || n > 86400) throw badArg(flag, `"${value}" is not a number of seconds (${min0 ? '>= 0' : '> 0'}, at most 86400)`);
  return n;
}

function ipArg(flag: string, value: string): string {
  if (!net.isIPv4(value)) throw badArg(flag, `"${value}" is not an IPv4 address`);
  return value;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- outputs

/** add_app / update_app: warn about the package in so/ (missing, not ELF/JS, no somain/main); --strict refuses. */
function checkPackage(ctx: Ctx, bin: string): void {
  const report = inspectPackage(ctx.home.so(bin));
  if (report.problems.length === 0) return;
  if (ctx.o.strict) throw badArg('--bin', `${report.problems.join('; ')} (--strict)`);
  for (const p of report.problems) process.stderr.write(`WARN : ${p}\n`);
}

function printOk(ctx: Ctx, answer: unknown, lines: string[] = []): void {
  if (ctx.json) {
    ctx.out(`${JSON.stringify(answer, null, 2)}\n`);
    return;
  }
  ctx.out(`OK\n${lines.map((l) => `${l}\n`).join('')}`);
}

const NODE_COLUMNS: Column<NodeConf>[] = [
  { header: 'NODE', value: (n) => n.node },
  { header: 'INVALID', value: (n) => n.invalid },
  { header: 'KEY_EXP', value: (n) => n.key_exp ?? '' },
  { header: 'HOSTS', value: (n) => n.hosts.map((h) => `${h.ip}:${h.port}${h.invalid ? '(invalid)' : ''}`).join(' ') },
  { header: 'KVS', value: (n) => Object.keys(n.kvs).length },
];

const APP_COLUMNS: Column<AppWithPackage>[] = [
  { header: 'APP', value: (a) => a.app },
  { header: 'DESC', value: (a) => a.desc },
  { header: 'BIN', value: (a) => a.bin },
  { header: 'TIMEOUT', value: (a) => a.timeout },
  { header: 'TIMEOUT2', value: (a) => a.timeout2 },
  { header: 'INVALID', value: (a) => a.invalid },
  { header: 'SERVER_NODE', value: (a) => a.server_node ?? '' },
  { header: 'SIZE', value: (a) => (a.sha256 ? a.size : '-') },
  { header: 'SHA256', value: (a) => (a.sha256 ? a.sha256.slice(0, 16) : '(no package)') },
];

const PROJECT_COLUMNS: Column<ProjectConf>[] = [
  { header: 'PROJECT', value: (p) => p.project },
  { header: 'SERVER_NODES', value: (p) => p.server_nodes.join(' ') },
  { header: 'CLIENT_NODES', value: (p) => p.client_nodes.join(' ') },
  { header: 'APPS', value: (p) => p.apps.join(' ') },
];

type SessionRow = Session & { idle_seconds: number; current_version: number | null; current: boolean | null };
const SESSION_COLUMNS: Column<SessionRow>[] = [
  { header: 'ROLE', value: (s) => s.role },
  { header: 'NODE', value: (s) => s.node },
  { header: 'IP', value: (s) => s.ip },
  { header: 'PORT', value: (s) => s.port || '' },
  { header: 'PID', value: (s) => s.pid || '' },
  { header: 'LOAD', value: (s) => s.load ?? '' },
  { header: 'WATCHES', value: (s) => s.watches },
  // the config version the agent holds, and whether it is the registry's current one for its node
  { header: 'CONFIG', value: (s) => (s.version === undefined ? '' : s.version) },
  { header: 'CURRENT', value: (s) => (s.current === null || s.current === undefined ? '' : s.current ? 'yes' : `no (${s.current_version ?? 'node removed'})`) },
  { header: 'IDLE_S', value: (s) => s.idle_seconds },
  { header: 'SINCE', value: (s) => new Date(s.since).toISOString() },
];

interface NodeKeyRow { node: string; kcv: string; enable_at: number; disable_at: number }

const when = (ms: number, none: string): string => (ms === 0 ? none : new Date(ms).toISOString());

// ---------------------------------------------------------------- shows

type Handler = (ctx: Ctx) => Promise<void>;

const filterQuery = (o: CliOptions): string => {
  const q = new URLSearchParams();
  if (o.node) q.set('node', nameArg('--node', o.node));
  if (o.app) q.set('app', nameArg('--app', o.app));
  if (o.project) q.set('project', nameArg('--project', o.project));
  const s = q.toString();
  return s ? `?${s}` : '';
};

const SHOWS: Record<string, Handler> = {
  /** The monitor's, the worker's and the home's event log, pretty-printed (lib/log-tail.ts). */
  async logs(ctx) {
    const conf = await ctx.conf();
    const files = [conf.log.monitor ?? 'log/ibms_monitor.log', conf.log.worker ?? 'log/ibms_worker.log', conf.log.main ?? 'log/ibms_main.log', conf.log.event ?? 'log/event.log'].map((f) => ctx.home.resolve(f));
    process.exitCode = await showLogs(() => files.filter((f) => fs.existsSync(f)), { follow: ctx.o.follow, lines: ctx.o.lines, json: ctx.json });
  },
  async status(ctx) {
    const pidFile = ctx.home.run(PID_FILE);
    const pid = runningPid(pidFile);
    if (pid === undefined) throw new IbpError('IBP_ERR_DAEMON_NOT_RUNNING', { tool: 'ibms', pidfile: pidFile });
    let st: Record<string, unknown> | undefined;
    let problem: string | undefined;
    try {
      st = await (await ctx.client()).request<Record<string, unknown>>('GET', '/v1/status');
    } catch (e) {
      problem = (e as Error).message;
    }
    if (ctx.json) {
      ctx.out(`${JSON.stringify({ running: true, monitor_pid: pid, worker: st ?? null, problem }, null, 2)}\n`);
      return;
    }
    if (!st) {
      ctx.out(`ibms is running: monitor pid ${pid}; the API does not answer (${problem})\n`);
      return;
    }
    ctx.out(`ibms is running: monitor pid ${pid}, worker pid ${st.pid}, listening ${st.server}\n`);
    ctx.out(`  epoch ${st.epoch}, started ${st.started_at}, loaded from ${Object.values(st.loaded_from as object).join('/')} in ${st.load_ms} ms\n`);
    ctx.out(`  nodes ${st.nodes}, apps ${st.apps}, projects ${st.projects}, nodes changed ${st.nodes_changed}, watches ${st.watches}, sessions ${st.sessions}\n`);
  },
  async sessions(ctx) {
    const r = await (await ctx.client()).request<{ sessions: SessionRow[] }>('GET', '/v1/sessions');
    printRows(r.sessions, SESSION_COLUMNS, ctx.json, ctx.out);
  },
  async nodes(ctx) {
    const r = await (await ctx.client()).request<{ nodes: NodeConf[] }>('GET', `/v1/nodes${filterQuery({ node: ctx.o.node })}`);
    printRows(r.nodes, NODE_COLUMNS, ctx.json, ctx.out);
  },
  async apps(ctx) {
    const r = await (await ctx.client()).request<{ apps: AppWithPackage[] }>('GET', `/v1/apps${filterQuery({ app: ctx.o.app })}`);
    printRows(r.apps, APP_COLUMNS, ctx.json, ctx.out);
  },
  async projects(ctx) {
    const r = await (await ctx.client()).request<{ projects: ProjectConf[] }>('GET', `/v1/projects${filterQuery({ project: ctx.o.project })}`);
    printRows(r.projects, PROJECT_COLUMNS, ctx.json, ctx.out);
  },
  async nodes_kv(ctx) {
    const r = await (await ctx.client()).request<{ kvs: { node: string; key: string; value: string }[] }>('GET', `/v1/nodes_kv${filterQuery({ node: ctx.o.node })}`);
    printRows(r.kvs, [{ header: 'NODE', value: (k) => k.node }, { header: 'KEY', value: (k) => k.key }, { header: 'VALUE', value: (k) => k.value }], ctx.json, ctx.out);
  },
  async nodes_changed(ctx) {
    const r = await (await ctx.client()).request<{ nodes: string[] }>('GET', '/v1/nodes_changed');
    if (ctx.json) ctx.out(`${JSON.stringify(r.nodes)}\n`);
    else {
      ctx.out(r.nodes.map((n) => `${n}\n`).join(''));
      // stdout stays one node a line (scripts loop over it); a person learns that none is missing
      if (r.nodes.length === 0) process.stderr.write('no node changed since the last distribution (ibms -a distribute_config)\n');
    }
  },
  async node_keys(ctx) {
    const r = await (await ctx.client()).request<{ keys: (NodeKeyRow & { sign_public: string; agree_public: string })[] }>('GET', `/v1/node_keys${filterQuery({ node: ctx.o.node })}`);
    const now = Date.now();
    const all = r.keys.map((k) => ({ node: k.node, kcv: k.kcv, enableAt: k.enable_at, disableAt: k.disable_at }));
    const rows = r.keys.map((k, i) => ({ ...k, state: keyState(all[i]!, all, now) }));
    printRows(rows, [
      { header: 'NODE', value: (k) => k.node },
      { header: 'KCV', value: (k) => k.kcv },
      { header: 'STATE', value: (k) => k.state },
      { header: 'ENABLE_AT', value: (k) => when(k.enable_at, '(at once)') },
      { header: 'DISABLE_AT', value: (k) => when(k.disable_at, '(never)') },
    ], ctx.json, ctx.out);
  },
  async node_credential(ctx) {
    const node = nameArg('--node', need(ctx.o, 'node', '--node', '-s node_credential'));
    const r = await (await ctx.client()).request<{ credential: string }>('GET', `/v1/nodes/${enc(node)}/credential`);
    ctx.out(ctx.json ? `${JSON.stringify(r)}\n` : `${r.credential}\n`);
  },
};

// ---------------------------------------------------------------- actions

function nodeOf(ctx: Ctx, what: string): string {
  return nameArg('--node', need(ctx.o, 'node', '--node', what));
}
function appOf(ctx: Ctx, what: string): string {
  return nameArg('--app', need(ctx.o, 'app', '--app', what));
}
function projectOf(ctx: Ctx, what: string): string {
  return nameArg('--project', need(ctx.o, 'project', '--project', what));
}
function hostOf(ctx: Ctx, what: string): { ip: string; port: number } {
  return { ip: ipArg('--ip', need(ctx.o, 'ip', '--ip', what)), port: intArg('--port', need(ctx.o, 'port', '--port', what), 1, 65535) };
}
function binArg(value: string): string {
  if (!CLI_BIN_RE.test(value)) throw badArg('--bin', `"${value}" is not a plain .so or .mjs file name (no path)`);
  return value;
}

function appBody(ctx: Ctx, what: string, add: boolean): Record<string, unknown> {
  const o = ctx.o;
  const body: Record<string, unknown> = {};
  if (add) {
    body.app = appOf(ctx, what);
    body.desc = need(o, 'desc', '--desc', what);
    body.bin = binArg(need(o, 'bin', '--bin', what));
    body.timeout = secondsArg('--timeout', need(o, 'timeout', '--timeout', what));
  } else {
    if (o.desc !== undefined) body.desc = o.desc;
    if (o.bin !== undefined) body.bin = binArg(o.bin);
    if (o.timeout !== undefined) body.timeout = secondsArg('--timeout', o.timeout);
  }
  if (o.timeout2 !== undefined) body.timeout2 = secondsArg('--timeout2', o.timeout2, true);
  if (o.invalid !== undefined) body.invalid = flagArg('--invalid', o.invalid);
  if (o.serverNode !== undefined) body.server_node = o.serverNode === '' ? '' : nameArg('--server-node', o.serverNode);
  return body;
}

function projectLists(ctx: Ctx): Record<string, string[]> {
  const body: Record<string, string[]> = {};
  const s = namesArg('--server-nodes', ctx.o.serverNodes);
  const c = namesArg('--client-nodes', ctx.o.clientNodes);
  const a = namesArg('--apps', ctx.o.apps);
  if (s) body.server_nodes = s;
  if (c) body.client_nodes = c;
  if (a) body.apps = a;
  return body;
}

const ACTIONS: Record<string, Handler> = {
  async init(ctx) {
    const port = ctx.o.port === undefined ? undefined : intArg('--port', ctx.o.port, 1, 65535);
    const ip = ctx.o.ip === undefined ? undefined : ipArg('--ip', ctx.o.ip);
    const { initHome } = await import('./init.js');
    for (const line of initHome(ctx.home, { ...(ip ? { ip } : {}), ...(port ? { port } : {}), confFile: ctx.confFile })) ctx.out(`${line}\n`);
  },
  async check(ctx) {
    const conf = await ctx.conf(true);
    (await import('./second-copy.js')).parseSecondTarget(conf.misc.second_config_dump, ctx.home);
    const { dataFiles, loadData } = await import('./persist.js');
    const loaded = loadData(dataFiles(ctx.home, conf));
    const files = dataFiles(ctx.home, conf);
    if (ctx.json) {
      ctx.out(`${JSON.stringify({ ok: true, conf: ctx.confFile, files, loaded_from: loaded.sources, nodes: loaded.store.nodes.size, apps: loaded.store.apps.size, projects: loaded.store.projects.size }, null, 2)}\n`);
      return;
    }
    ctx.out(`ibms: ${ctx.confFile} is ok\n`);
    ctx.out(`ibms: ${files.nodes}${loaded.sources.nodes === 'bin' ? '.bin' : ''}: ${loaded.store.nodes.size} nodes\n`);
    ctx.out(`ibms: ${files.apps}${loaded.sources.apps === 'bin' ? '.bin' : ''}: ${loaded.store.apps.size} apps\n`);
    ctx.out(`ibms: ${files.projects}${loaded.sources.projects === 'bin' ? '.bin' : ''}: ${loaded.store.projects.size} projects\n`);
    ctx.out('ibms: config check ok\n');
  },
  async start(ctx) {
    const conf = await ctx.conf(true);
    if (isDaemonChild()) {
      const { runMonitor } = await import('./monitor.js');
      await runMonitor({ confFile: ctx.confFile, home: ctx.home, conf });
      return;
    }
    ctx.home.ensure();
    const { createLogger } = await import('../lib/log.js');
    const main = createLogger({ name: 'ibms', file: ctx.home.resolve(conf.log.main ?? 'log/ibms_main.log'), base: { role: 'main' } });
    main.info(`start requested , conf[${ctx.confFile}] listen[${conf.server.ip}:${conf.server.port}]`);
    let pid: number;
    try {
      pid = await startDaemon({
        tool: 'ibms',
        pidFile: ctx.home.run(PID_FILE),
        logFile: ctx.home.resolve(conf.log.monitor ?? 'log/ibms_monitor.log'),
        argv: [process.argv[1]!, '-f', ctx.confFile, '-a', 'start'],
        env: { ...process.env, IBP_HOME: ctx.home.root },
        timeoutMs: 120_000,
      });
    } catch (e) {
      main.error(`start failed , ${(e as Error).message}`);
      throw e;
    }
    main.info(`start ok , pid[${pid}]`);
    ctx.out(`ibms start ok (pid ${pid}, listening ${conf.server.ip}:${conf.server.port})\n`);
  },
  async stop(ctx) {
    const pid = await stopDaemon('ibms', ctx.home.run(PID_FILE), { timeoutMs: 60_000 });
    ctx.out(`ibms stopped (pid ${pid})\n`);
  },
  async kill(ctx) {
    const pid = await killDaemon('ibms', ctx.home.run(PID_FILE));
    ctx.out(`ibms killed (pid ${pid})\n`);
  },

  async add_node(ctx) {
    const body: Record<string, unknown> = { node: nodeOf(ctx, '-a add_node') };
    if (ctx.o.invalid !== undefined) body.invalid = flagArg('--invalid', ctx.o.invalid);
    if (ctx.o.keyExp !== undefined) body.key_exp = ctx.o.keyExp;
    printOk(ctx, await (await ctx.client()).request('POST', '/v1/nodes', body));
  },
  async set_node(ctx) {
    const node = nodeOf(ctx, '-a set_node');
    const body: Record<string, unknown> = {};
    if (ctx.o.invalid !== undefined) body.invalid = flagArg('--invalid', ctx.o.invalid);
    if (ctx.o.keyExp !== undefined) body.key_exp = ctx.o.keyExp;
    if (Object.keys(body).length === 0) throw badArg('--invalid', 'set_node needs --invalid or --key-exp');
    printOk(ctx, await (await ctx.client()).request('PATCH', `/v1/nodes/${enc(node)}`, body));
  },
  async remove_node(ctx) {
    printOk(ctx, await (await ctx.client()).request('DELETE', `/v1/nodes/${enc(nodeOf(ctx, '-a remove_node'))}`));
  },
  async add_node_host(ctx) {
    const node = nodeOf(ctx, '-a add_node_host');
    printOk(ctx, await (await ctx.client()).request('POST', `/v1/nodes/${enc(node)}/hosts`, hostOf(ctx, '-a add_node_host')));
  },
  async remove_node_host(ctx) {
    const node = nodeOf(ctx, '-a remove_node_host');
    const h = hostOf(ctx, '-a remove_node_host');
    printOk(ctx, await (await ctx.client()).request('DELETE', `/v1/nodes/${enc(node)}/hosts/${h.ip}/${h.port}`));
  },
  async add_node_kv(ctx) {
    const node = nodeOf(ctx, '-a add_node_kv');
    const key = nameArg('--key', need(ctx.o, 'key', '--key', '-a add_node_kv'));
    const value = need(ctx.o, 'value', '--value', '-a add_node_kv');
    printOk(ctx, await (await ctx.client()).request('POST', `/v1/nodes/${enc(node)}/kvs`, { key, value }));
  },
  async set_node_kv(ctx) {
    const node = nodeOf(ctx, '-a set_node_kv');
    const key = nameArg('--key', need(ctx.o, 'key', '--key', '-a set_node_kv'));
    if (ctx.o.value === undefined) throw badArg('--value', 'is required for -a set_node_kv');
    printOk(ctx, await (await ctx.client()).request('PUT', `/v1/nodes/${enc(node)}/kvs/${enc(key)}`, { value: ctx.o.value }));
  },
  async remove_node_kv(ctx) {
    const node = nodeOf(ctx, '-a remove_node_kv');
    const key = nameArg('--key', need(ctx.o, 'key', '--key', '-a remove_node_kv'));
    printOk(ctx, await (await ctx.client()).request('DELETE', `/v1/nodes/${enc(node)}/kvs/${enc(key)}`));
  },

  async add_app(ctx) {
    const body = appBody(ctx, '-a add_app', true);
    checkPackage(ctx, String(body.bin));
    printOk(ctx, await (await ctx.client()).request('POST', '/v1/apps', body));
  },
  async set_app(ctx) {
    const app = appOf(ctx, '-a set_app');
    const body = appBody(ctx, '-a set_app', false);
    if (Object.keys(body).length === 0) throw badArg('--desc', 'set_app needs at least one of --desc --bin --timeout --timeout2 --invalid --server-node');
    printOk(ctx, await (await ctx.client()).request('PATCH', `/v1/apps/${enc(app)}`, body));
  },
  async update_app(ctx) {
    const app = appOf(ctx, '-a update_app');
    const client = await ctx.client();
    const known = await client.request<{ apps: AppWithPackage[] }>('GET', `/v1/apps?app=${enc(app)}`);
    if (known.apps[0]) checkPackage(ctx, known.apps[0].bin);
    const r = await client.request<{ sha256: string; size: number }>('POST', `/v1/apps/${enc(app)}/update`);
    printOk(ctx, r, [`package sha256 ${r.sha256} size ${r.size}`]);
  },
  async remove_app(ctx) {
    printOk(ctx, await (await ctx.client()).request('DELETE', `/v1/apps/${enc(appOf(ctx, '-a remove_app'))}`));
  },

  async add_project(ctx) {
    const project = projectOf(ctx, '-a add_project');
    printOk(ctx, await (await ctx.client()).request('POST', '/v1/projects', { project, ...projectLists(ctx) }));
  },
  async set_project(ctx) {
    const project = projectOf(ctx, '-a set_project');
    const body = projectLists(ctx);
    if (Object.keys(body).length === 0) throw badArg('--server-nodes', 'set_project needs at least one of --server-nodes --client-nodes --apps');
    printOk(ctx, await (await ctx.client()).request('PATCH', `/v1/projects/${enc(project)}`, body));
  },
  async remove_project(ctx) {
    printOk(ctx, await (await ctx.client()).request('DELETE', `/v1/projects/${enc(projectOf(ctx, '-a remove_project'))}`));
  },

  async distribute_config(ctx) {
    const r = await (await ctx.client()).request<{ distributed: { node: string; version: number }[] }>('POST', '/v1/config/distribute');
    printOk(ctx, r, r.distributed.map((d) => `${d.node} version ${d.version}`));
  },
  async download_config(ctx) {
    const r = await (await ctx.client()).request<{ node: string; version: number }>('POST', '/v1/config/download', { node: nodeOf(ctx, '-a download_config') });
    printOk(ctx, r, [`${r.node} version ${r.version}`]);
  },
  async save_config(ctx) {
    const r = await (await ctx.client()).request<{ files: string[]; images: string[]; second: string[] }>('POST', '/v1/config/save');
    printOk(ctx, r, [...r.files, ...r.images, ...r.second].map((f) => `${f} saved`));
  },
  async rotate_credential(ctx) {
    const o = ctx.o;
    const picked = [o.node !== undefined, o.admin === true, o.adminRo === true].filter(Boolean).length;
    if (picked !== 1) throw badArg('--node/--admin/--admin-ro', 'give exactly one of --node N, --admin, --admin-ro for -a rotate_credential');
    const kind = o.admin ? 'admin' : o.adminRo ? 'admin-ro' : 'node';
    const node = kind === 'node' ? nodeOf(ctx, '-a rotate_credential') : undefined;
    const remote = ctx.o.addr !== undefined || process.env.IBMS_ADDR !== undefined || runningPid(ctx.home.run(PID_FILE)) !== undefined;
    let file: string;
    if (remote) {
      const r = await (await ctx.client()).request<{ credential_file: string }>('POST', '/v1/credentials/rotate', { kind, ...(node ? { node } : {}) });
      file = r.credential_file;
      if (ctx.json) return void ctx.out(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      // the daemon is not running: rewrite the file; it is read at the next start
      const { ADMIN_CREDENTIAL_FILE, ADMIN_RO_CREDENTIAL_FILE, nodeCredentialFile, replaceCredentialFile } = await import('./credentials.js');
      file = ctx.home.keys(kind === 'admin' ? ADMIN_CREDENTIAL_FILE : kind === 'admin-ro' ? ADMIN_RO_CREDENTIAL_FILE : nodeCredentialFile(node!));
      if (kind === 'node' && !fs.existsSync(file)) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'node credential', name: file });
      replaceCredentialFile(file);
      if (ctx.json) return void ctx.out(`${JSON.stringify({ ok: true, kind, ...(node ? { node } : {}), credential_file: file, offline: true }, null, 2)}\n`);
    }
    printOk(ctx, undefined, [
      `${file} re-issued (mode 0600); the old credential is refused from now on`,
      ...(kind === 'node' ? [`put the new credential in ibma.conf of node ${node} (\`ibms -s node_credential --node ${node}\`) and restart its ibma`] : []),
    ]);
  },
  async rotate_node_key(ctx) {
    const node = nodeOf(ctx, '-a rotate_node_key');
    const r = await (await ctx.client()).request<{ kcv: string; enable_at: number; old: { kcv: string; disable_at: number }[]; dropped: string[]; distributed: { node: string; version: number }[] }>('POST', `/v1/nodes/${enc(node)}/keys/rotate`);
    printOk(ctx, r, [
      `node ${node}: new key ${r.kcv} , senders switch at ${new Date(r.enable_at).toISOString()}`,
      ...r.old.map((o) => `node ${node}: old key ${o.kcv} , refused from ${new Date(o.disable_at).toISOString()}`),
      ...(r.dropped.length ? [`node ${node}: keys past their disable time dropped: ${r.dropped.join(' ')}`] : []),
      `distributed to ${r.distributed.map((d) => `${d.node}:${d.version}`).join(' ') || '(no distributed node)'}`,
    ]);
  },
  async build_config(ctx) {
    const r = await (await ctx.client()).request<{ images: string[] }>('POST', '/v1/config/build');
    printOk(ctx, r, r.images.map((f) => `${f} built`));
  },
  scale_out: (ctx) => scaleCommand(ctx, 'out'),
  scale_in: (ctx) => scaleCommand(ctx, 'in'),
};

/** -a scale_out / scale_in: the step report as a table (or JSON); non-zero exit when a step failed. */
async function scaleCommand(ctx: Ctx, kind: 'out' | 'in'): Promise<void> {
  const what = `-a scale_${kind}`;
  const node = nodeOf(ctx, what);
  const hostArg = need(ctx.o, 'host', '--host', what);
  const m = /^([^:]+)(?::(\d+))?$/.exec(hostArg);
  if (!m) throw badArg('--host', `"${hostArg}" is not IP or IP:PORT`);
  const ip = ipArg('--host', m[1]!);
  const ibasPort = m[2] === undefined ? 18001 : intArg('--host', m[2], 1, 65535);
  const transport = ctx.o.transport ?? 'ssh';
  const { TRANSPORT_KINDS } = await import('./host-transport.js');
  if (!(TRANSPORT_KINDS as readonly string[]).includes(transport)) throw badArg('--transport', `"${transport}" is not one of ${TRANSPORT_KINDS.join(', ')}`);
  const user = ctx.o.user === undefined ? (await import('node:os')).userInfo().username : nameArg('--user', ctx.o.user);
  const conf = await ctx.conf();
  const { scale } = await import('./scale.js');
  const client = await ctx.client();
  const progress = ctx.json ? undefined : (r: { step: string; result: string; detail: string }) => process.stderr.write(`scale_${kind} ${node} ${ip} : ${r.step} ${r.result}\n`);
  const r = await scale(kind, client, {
    node,
    host: { ip, user, transport: transport as 'ssh' | 'ibcmd' },
    ibasPort,
    ibms: { ip: conf.server.ip, port: conf.server.port },
    files: { home: ctx.home.root },
    clusterConf: process.env.IBP_CLUSTER_CONF ?? ctx.home.etc('ibp_cluster.conf'),
  }, progress);
  printRows(r.rows, [{ header: 'STEP', value: (x) => x.step }, { header: 'RESULT', value: (x) => x.result }, { header: 'DETAIL', value: (x) => x.detail }], ctx.json, ctx.out);
  if (!r.ok) throw new IbpError('IBP_ERR_REG_SCALE_STEP', { step: r.rows.find((x) => x.result === 'FAILED')?.step ?? '?', host: ip, detail: 'see the report above' });
}

export const ACTION_NAMES = Object.keys(ACTIONS);
export const SHOW_NAMES = Object.keys(SHOWS);

/** Other names IBP's documents use for the same commands. */
const ALIASES: Record<string, string> = {
  commit_config: 'distribute_config',
  changed_nodes: 'nodes_changed',
  cnodes_changed: 'nodes_changed',
};
const canonical = (name: string): string => (Object.hasOwn(ALIASES, name) ? ALIASES[name]! : name);

/**
 * Read ibms.conf for a command that talks to the daemon. It needs only the address and the
 * compression threshold, so those are checked here and TypeBox/ajv are not loaded (they cost
 * most of a command's start on a busy machine). A file that fails this check, and every
 * `-a check` / `-a start`, goes through the full validation (lib/config/load.ts), which names
 * the file and the key.
 */
async function readIbmsConf(file: string, full: boolean): Promise<IbmsConf> {
  if (!full) {
    try {
      const c = sjson.parse(stripJsonComments(fs.readFileSync(file, 'utf8')), undefined, { protoAction: 'error', constructorAction: 'error' }) as IbmsConf;
      const ok =
        net.isIPv4(c?.server?.ip) && Number.isInteger(c.server.port) && c.server.port >= 1 && c.server.port <= 65535 &&
        Number.isInteger(c.comm?.min_compress_size) && c.comm.min_compress_size >= 0;
      if (ok) return c;
    } catch {
      // fall through: the full loader names the problem
    }
  }
  const [{ loadConfigFile }, { IbmsConf: schema }] = await Promise.all([import('../lib/config/load.js'), import('../lib/config/ibms-conf.js')]);
  return loadConfigFile(schema, file, 'ibms');
}

/** `ip:port` or `http://ip:port[/]` (Consul's CONSUL_HTTP_ADDR style). */
export function addrArg(flag: string, value: string): { ip: string; port: number } {
  const m = /^(?:http:\/\/)?([0-9.]+):([0-9]{1,5})\/?$/.exec(value.trim());
  if (!m || !net.isIPv4(m[1]!)) throw badArg(flag, `"${value}" is not an address (ip:port or http://ip:port)`);
  return { ip: m[1]!, port: intArg(flag, m[2]!, 1, 65535) };
}

/** The credential: --token-file, else $IBMS_TOKEN, else the home's admin credential. */
function tokenOf(o: CliOptions, home: Home): string {
  if (o.tokenFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(o.tokenFile, 'utf8').trim();
    } catch (e) {
      throw badArg('--token-file', `cannot read ${o.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!text) throw badArg('--token-file', `${o.tokenFile} is empty`);
    return text;
  }
  const env = process.env.IBMS_TOKEN?.trim();
  if (env) return env;
  return readAdminCredential(home);
}

function makeCtx(o: CliOptions): Ctx {
  const confName = o.conf ?? IBMS_CONF;
  const home = confName.includes('/') ? homeOfConf(confName) : new Home();
  const confFile = home.confPath(confName);
  let conf: IbmsConf | undefined;
  let client: IbmsClient | undefined;
  const ctx: Ctx = {
    o,
    home,
    confFile,
    json: o.json === true,
    out: (s) => void process.stdout.write(s),
    conf: async (full = false) => (conf ??= await readIbmsConf(confFile, full)),
    client: async () => {
      if (!client) {
        const addr = o.addr ?? process.env.IBMS_ADDR;
        let c: IbmsConf | undefined;
        try {
          c = await ctx.conf();
        } catch (e) {
          if (addr === undefined) throw e; // with an address the home's ibms.conf is optional
        }
        const to = addr !== undefined ? addrArg(o.addr !== undefined ? '--addr' : 'IBMS_ADDR', addr) : { ip: c!.server.ip, port: c!.server.port };
        client = new IbmsClient({ ...to, credential: tokenOf(o, home), minCompressSize: c?.comm.min_compress_size ?? 512 });
      }
      return client;
    },
  };
  return ctx;
}

export function buildProgram(): Command {
  const program = createProgram('ibms', 'IBP-TS registry: cluster config (nodes, apps, projects), distribution to node agents, app packages');
  program
    .option('-f, --conf <file>', 'ibms.conf (a name without a path means $IBP_HOME/etc/NAME)', IBMS_CONF)
    .option('-a, --action <action>', `action: ${ACTION_NAMES.join(' ')}`)
    .option('-s, --show <what>', `show: ${SHOW_NAMES.join(' ')}`)
    .option('--node <node>', 'node name')
    .option('--invalid <0|1>', 'mark invalid (1) or valid (0)')
    .option('--key-exp <exp>', "node's key expression")
    .option('--ip <ip>', 'host IP (add_node_host, remove_node_host) or listen IP (init)')
    .option('--port <port>', 'host port (add_node_host, remove_node_host) or listen port (init)')
    .option('--app <app>', 'app (transaction code)')
    .option('--desc <desc>', 'app description')
    .option('--bin <file.so>', 'app package file name in so/')
    .option('--timeout <seconds>', 'client timeout T')
    .option('--timeout2 <seconds>', 'server timeout (0 = T × 1.5)')
    .option('--server-node <node>', "app's default server node ('' for none)")
    .option('--project <project>', 'project name')
    .option('--server-nodes <list>', 'server nodes, "N1 N2" or "N1,N2"')
    .option('--client-nodes <list>', 'client nodes')
    .option('--apps <list>', 'apps')
    .option('--key <key>', 'kv key')
    .option('--value <value>', 'kv value')
    .option('--host <ip[:port]>', 'scale_out / scale_in: the host (and its ibas port, default 18001)')
    .option('--user <user>', 'scale_out / scale_in: the account on the host (default: this user)')
    .option('--transport <ssh|ibcmd>', 'scale_out / scale_in: how to reach the host (default ssh)')
    .option('--admin', 'rotate_credential: the admin credential')
    .option('--admin-ro', 'rotate_credential: the read-only admin credential')
    .option('--addr <ip:port>', 'the daemon\'s address (default $IBMS_ADDR, else server of ibms.conf)')
    .option('--token-file <file>', 'file holding the credential to present (default $IBMS_TOKEN, else keys/admin.credential)')
    .option('--json', 'print JSON instead of tables')
    .option('--strict', 'add_app, update_app: refuse a package that is missing, not an ELF/JS module, or lacks somain/main (default: warn)')
    .option('--follow', 'logs: keep printing new lines (tail -F)')
    .option('--lines <n>', 'logs: how many lines to print first', '50')
    .addHelpText('after', USAGE)
    .action(async (o: CliOptions) => {
      if (o.action && o.show) throw badArg('-a/-s', 'give either -a <action> or -s <what>, not both');
      if (o.action) o.action = canonical(o.action);
      if (o.show) o.show = canonical(o.show);
      if (o.action) {
        const h = ACTIONS[o.action];
        if (!h || !Object.hasOwn(ACTIONS, o.action)) throw badArg('-a', `unknown action "${o.action}" (one of ${ACTION_NAMES.join(', ')})`);
        await h(makeCtx(o));
      } else if (o.show) {
        const h = SHOWS[o.show];
        if (!h || !Object.hasOwn(SHOWS, o.show)) throw badArg('-s', `unknown show "${o.show}" (one of ${SHOW_NAMES.join(', ')})`);
        await h(makeCtx(o));
      } else {
        throw badArg('-a/-s', 'nothing to do: give -a <action> or -s <what> (ibms --help)');
      }
    });
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  // `ibms -s nodes | head`: a reader that goes away is not an error
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  const program = buildProgram();
  if (argv.length <= 2) {
    process.stderr.write(`${program.helpInformation()}${USAGE}`);
    process.exitCode = 2;
    return;
  }
  await runCli(program, argv);
}

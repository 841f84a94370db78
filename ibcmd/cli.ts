/**
 * The ibcmd command line, IBP's shape plus long options and --json:
 *
 *   ibcmd -f ibcmd.conf -a init [--ip IP] [--port PORT]
 *                       -a start [--foreground] | -a stop | -a kill | -a check
 *                       -s status [--json]
 *         [--ip IP --port PORT] -a execmd --cmd "CMD ARGS" [--user U] [--json]
 *         [--ip IP --port PORT] -a putfile --file LOCAL_PATH [--as NAME]
 *         [--ip IP --port PORT] -a getfile --file NAME [--out PATH]
 *         [--ip IP --port PORT] -s files [--json]
 *
 * Client verbs talk to the agent at --ip/--port, or to this home's agent (server address of
 * ibcmd.conf) when they are not given, with the credential of --credential-file, or of this home.
 * `execmd` exits with the remote command's exit code (128+N for a signal, 124 after a timeout).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Help, type Command } from 'commander';
import { badArg, createProgram, intArg, printRows } from '../lib/cli.js';
import { isDaemonChild, killDaemon, startDaemon, stopDaemon } from '../lib/daemon.js';
import { IbpError, isIbpError } from '../lib/errors.js';
import { checkPlainFileName, HOME_DIRS, type Home } from '../lib/home.js';
import { removePid, runningPid } from '../lib/pidfile.js';
import { IbcmdClient, type ExecAnswer } from './client.js';
import { checkConfFiles, defaultConf, loadConf, PID_NAME, renderConf, resolveConf, type LoadedConf } from './config.js';
import { ensureCredential, readCredential } from './credential.js';
import type { AgentStatus } from './server.js';

const USAGE = `USAGE : ibcmd -f ibcmd.conf -a init [ --ip (ip) ] [ --port (port) ]
                         -a start [ --foreground ]
                         -a stop
                         -a kill
                         -a check
                         -s status [ --json ]
        ibcmd [ --ip (ip) --port (port) ] [ --credential-file (file) ] -a execmd --cmd (cmd) [ --user (user) ] [ --json ]
        ibcmd [ --ip (ip) --port (port) ] [ --credential-file (file) ] -a putfile --file (local path) [ --as (name) ]
        ibcmd [ --ip (ip) --port (port) ] [ --credential-file (file) ] -a getfile --file (name) [ --out (path) ]
        ibcmd [ --ip (ip) --port (port) ] [ --credential-file (file) ] -s files [ --json ]
kill -TERM (pid) : stop (running commands are killed)
kill -USR1 (pid) : reopen log files
`;

const ACTIONS = ['init', 'start', 'stop', 'kill', 'check', 'execmd', 'putfile', 'getfile'] as const;
const SHOWS = ['status', 'files'] as const;
type Action = (typeof ACTIONS)[number];
type Show = (typeof SHOWS)[number];

interface Opts {
  conf?: string;
  action?: string;
  show?: string;
  ip?: string;
  port?: string;
  cmd?: string;
  file?: string;
  as?: string;
  out?: string;
  user?: string;
  credentialFile?: string;
  timeout?: string;
  foreground?: boolean;
  json?: boolean;
}

const out = (s: string): void => void process.stdout.write(s);
const err = (s: string): void => void process.stderr.write(s);

function ipArg(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!net.isIPv4(v)) throw badArg('--ip', `"${v}" is not an IPv4 address`);
  return v;
}

function portArg(v: string | undefined): number | undefined {
  return v === undefined ? undefined : intArg('--port', v, 1, 65535);
}

function init(o: Opts): void {
  const conf = defaultConf(ipArg(o.ip), portArg(o.port));
  const { file, home } = resolveConf(o.conf);
  for (const d of HOME_DIRS) {
    const dir = home.dir(d);
    if (fs.existsSync(dir)) out(`WARN : ${dir} exist !\n`);
    else out(`mkdir ${dir} ok\n`);
  }
  home.ensure();
  if (fs.existsSync(file)) {
    out(`WARN : ${file} exist !\n`);
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, renderConf(conf), { flag: 'wx' });
    out(`${file} created\n`);
  }
  const loaded = loadConf(o.conf);
  for (const file of [loaded.conf.credential_file, ...(loaded.conf.callers ?? []).map((c) => c.credential_file)]) {
    const cred = home.resolve(file);
    out(ensureCredential(cred) ? `${cred} created (mode 0600): copy it to the hosts this home drives\n` : `WARN : ${cred} exist !\n`);
  }
  const sandbox = home.resolve(loaded.conf.sandbox);
  if (fs.existsSync(sandbox)) out(`WARN : ${sandbox} exist !\n`);
  else {
    fs.mkdirSync(sandbox, { recursive: true, mode: 0o700 });
    out(`mkdir ${sandbox} ok\n`);
  }
}

function check(o: Opts): void {
  const loaded = loadConf(o.conf);
  const { errors, warnings } = checkConfFiles(loaded);
  for (const w of warnings) out(`WARN : ${w}\n`);
  if (errors.length > 0) {
    for (const e of errors) err(`ibcmd: ${loaded.file}: ${e}\n`);
    process.exitCode = 3;
    return;
  }
  out(`${loaded.file} ok\n`);
}

async function start(o: Opts): Promise<void> {
  const loaded = loadConf(o.conf);
  const { errors } = checkConfFiles(loaded);
  if (errors.length > 0) throw new IbpError('IBP_ERR_CFG_INVALID', { file: loaded.file, key: '(files)', detail: errors.join('; ') });
  if (isDaemonChild() || o.foreground) {
    // loaded only here: client verbs start faster without fastify
    const { runAgent } = await import('./agent.js');
    await runAgent(loaded);
    return;
  }
  const pid = await startDaemon({
    tool: 'ibcmd',
    pidFile: loaded.home.run(PID_NAME),
    logFile: loaded.home.resolve(loaded.conf.log.main ?? 'log/ibcmd.log'),
  });
  out(`ibcmd start ok , pid[${pid}] ip[${loaded.conf.server.ip}] port[${loaded.conf.server.port}]\n`);
}

function tryLoad(o: Opts): LoadedConf | undefined {
  try {
    return loadConf(o.conf);
  } catch (e) {
    if (isIbpError(e, 'IBP_ERR_CFG_NOT_FOUND')) return undefined;
    throw e;
  }
}

/** The agent a client verb talks to, and the credential it presents. */
function client(o: Opts): IbcmdClient {
  const ip = ipArg(o.ip);
  const port = portArg(o.port);
  const needConf = ip === undefined || port === undefined || o.credentialFile === undefined;
  const loaded = needConf ? tryLoad(o) : undefined;
  const home: Home = loaded?.home ?? resolveConf(o.conf).home;
  const target = { ip: ip ?? loaded?.conf.server.ip, port: port ?? loaded?.conf.server.port };
  if (target.ip === undefined || target.port === undefined) throw badArg('--ip/--port', `no agent address: pass --ip and --port, or run \`ibcmd -a init\` in ${home.root}`);
  const credFile = o.credentialFile !== undefined ? path.resolve(o.credentialFile)
    : loaded ? home.resolve(loaded.conf.credential_file) : home.keys('ibcmd.credential');
  const timeoutMs = o.timeout === undefined ? undefined : intArg('--timeout', o.timeout, 1, 86400) * 1000;
  return new IbcmdClient({ ip: target.ip, port: target.port, secret: readCredential(credFile, false), timeoutMs });
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/** The exit code `execmd` mirrors: the remote one, 128+N for a signal, 124 for a timeout. */
export function execExitCode(r: Pick<ExecAnswer, 'code' | 'signal' | 'timedOut'>): number {
  if (r.timedOut) return 124;
  if (r.code !== null) return r.code;
  return 128 + (SIGNALS[r.signal ?? ''] ?? 0);
}

async function execmd(o: Opts): Promise<void> {
  if (o.cmd === undefined) throw badArg('--cmd', 'execmd needs --cmd "command args"');
  const r = await client(o).exec(o.cmd, o.user);
  if (o.json) {
    out(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    out(r.stdout);
    err(r.stderr);
    if (r.truncated.stdout || r.truncated.stderr) err(`ibcmd: output truncated (${[r.truncated.stdout ? 'stdout' : '', r.truncated.stderr ? 'stderr' : ''].filter(Boolean).join(', ')}): the command was stopped at the agent's max_output_size\n`);
    if (r.timedOut) err(`ibcmd: "${r.cmd}" timed out after ${r.ms} ms and was killed\n`);
  }
  process.exitCode = execExitCode(r);
}

async function putfile(o: Opts): Promise<void> {
  if (o.file === undefined) throw badArg('--file', 'putfile needs --file LOCAL_PATH');
  const name = checkPlainFileName(o.as ?? path.basename(o.file));
  let data: Buffer;
  try {
    data = fs.readFileSync(o.file);
  } catch (e) {
    throw badArg('--file', `cannot read ${o.file}: ${(e as Error).message}`);
  }
  const stored = await client(o).put(name, data);
  if (o.json) out(`${JSON.stringify(stored)}\n`);
  else out(`putfile ${stored.name} ok , size[${stored.size}] sha256[${stored.sha256}]\n`);
}

async function getfile(o: Opts): Promise<void> {
  if (o.file === undefined) throw badArg('--file', 'getfile needs --file NAME (a file of the agent\'s sandbox)');
  const name = checkPlainFileName(o.file);
  const { data, sha256 } = await client(o).get(name);
  const dest = path.resolve(o.out ?? name);
  const tmp = `${dest}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, dest);
  if (o.json) out(`${JSON.stringify({ name, size: data.length, sha256, path: dest })}\n`);
  else out(`getfile ${name} ok , size[${data.length}] sha256[${sha256}] path[${dest}]\n`);
}

const STATUS_COLUMNS = (['pid', 'user', 'ip', 'port', 'home', 'sandbox', 'started', 'uptime_s', 'requests', 'refused', 'running'] as const)
  .map((k) => ({ header: k, value: (s: AgentStatus) => s[k] }));

async function showStatus(o: Opts): Promise<void> {
  if (o.ip === undefined && o.port === undefined) {
    const { home } = resolveConf(o.conf);
    const pidFile = home.run(PID_NAME);
    const pid = runningPid(pidFile);
    if (pid === undefined) throw new IbpError('IBP_ERR_DAEMON_NOT_RUNNING', { tool: 'ibcmd', pidfile: pidFile });
  }
  const s = await client(o).status();
  printRows([s], STATUS_COLUMNS, o.json === true, out);
}

async function showFiles(o: Opts): Promise<void> {
  const files = await client(o).list();
  printRows(files, [
    { header: 'name', value: (f) => f.name },
    { header: 'size', value: (f) => f.size },
    { header: 'mtime', value: (f) => f.mtime },
  ], o.json === true, out);
}

async function stop(o: Opts, signal: 'stop' | 'kill'): Promise<void> {
  const { home } = resolveConf(o.conf);
  const pidFile = home.run(PID_NAME);
  if (signal === 'stop') {
    const pid = await stopDaemon('ibcmd', pidFile);
    out(`ibcmd stop ok , pid[${pid}]\n`);
  } else {
    const pid = await killDaemon('ibcmd', pidFile);
    removePid(pidFile, pid);
    out(`ibcmd kill ok , pid[${pid}]\n`);
  }
}

async function main(o: Opts): Promise<void> {
  if (o.action !== undefined && o.show !== undefined) throw badArg('-a/-s', 'give either an action (-a) or a show (-s), not both');
  if (o.action === undefined && o.show === undefined) throw badArg('-a', 'an action (-a) or a show (-s) is required');
  if (o.show !== undefined) {
    if (!(SHOWS as readonly string[]).includes(o.show)) throw badArg('-s', `"${o.show}" is not one of ${SHOWS.join(', ')}`);
    const s = o.show as Show;
    if (s === 'status') await showStatus(o);
    else await showFiles(o);
    return;
  }
  if (!(ACTIONS as readonly string[]).includes(o.action!)) throw badArg('-a', `"${o.action}" is not one of ${ACTIONS.join(', ')}`);
  const a = o.action as Action;
  switch (a) {
    case 'init': return init(o);
    case 'check': return check(o);
    case 'start': return start(o);
    case 'stop': return stop(o, 'stop');
    case 'kill': return stop(o, 'kill');
    case 'execmd': return execmd(o);
    case 'putfile': return putfile(o);
    case 'getfile': return getfile(o);
  }
}

export function buildProgram(): Command {
  const program = createProgram('ibcmd', 'IBP-TS remote-command agent: runs white-listed commands and moves files in its sandbox');
  program
    .option('-f, --conf <file>', 'config file (a name means $IBP_HOME/etc/NAME)', 'ibcmd.conf')
    .option('-a, --action <action>', `action: ${ACTIONS.join(' | ')}`)
    .option('-s, --show <what>', `show: ${SHOWS.join(' | ')}`)
    .option('--ip <ip>', 'agent address (init: listen address)')
    .option('--port <port>', 'agent port (init: listen port)')
    .option('--cmd <cmd>', 'execmd: the command line to run')
    .option('--file <file>', 'putfile: local file to send; getfile: name in the sandbox')
    .option('--as <name>', 'putfile: name in the sandbox (default: the local base name)')
    .option('--out <path>', 'getfile: where to write (default: ./NAME)')
    .option('--user <user>', 'execmd: refuse unless the agent runs as this user')
    .option('--credential-file <file>', 'credential to present (default: this home\'s keys/ibcmd.credential)')
    .option('--timeout <seconds>', 'client deadline of one request')
    .option('--foreground', 'start: stay in the foreground (no detach)')
    .option('--json', 'output as JSON')
    .configureHelp({ formatHelp: (cmd, helper) => `${USAGE}\n${Help.prototype.formatHelp.call(helper, cmd, helper)}` })
    .action(async (o: Opts) => main(o));
  return program;
}

/**
 * A real ibcmd agent in a temporary home on a loopback address of its own, for the ibcmd and
 * scripts tests: `ibcmd -a init`, then the config is adjusted (lists, limits), then `-a start`.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { parseJsonText } from '../../lib/config/load.js';
import { readPid } from '../../lib/pidfile.js';
import { IbcmdClient } from '../../ibcmd/client.js';
import { ensureCredential } from '../../ibcmd/credential.js';
import type { ListEntry } from '../../ibcmd/audit.js';
import type { IbcmdConf } from '../../ibcmd/config.js';
import { freePort, loopbackIp, reapHome, runTool, type RunResult } from '../helpers/procs.js';

export interface AgentHome {
  home: string;
  ip: string;
  port: number;
  credFile: string;
  sandbox: string;
  confFile: string;
  client: IbcmdClient;
  /** Run bin/ibcmd with this home. */
  ibcmd(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  pid(): number | undefined;
}

export interface AgentSetup {
  white?: ListEntry[];
  black?: ListEntry[];
  maxOutput?: number;
  timeoutS?: number;
  maxConcurrent?: number;
  maxFile?: number;
  /** Extra folders in front of exec.path. */
  path?: string[];
  /** Named callers (their credential files are created here, 0600). */
  callers?: { name: string; credential_file: string }[];
  /** Brute-force limit. */
  auth?: { max_failures: number; failure_window_seconds: number };
  /** Use this loopback address instead of a random one. */
  ip?: string;
  /** Home folder to use (default: a fresh t.testdir()). */
  home?: string;
  start?: boolean;
}

export async function makeAgentHome(t: Test, setup: AgentSetup = {}): Promise<AgentHome> {
  const home = setup.home ?? t.testdir();
  t.teardown(() => reapHome(home));
  const ip = setup.ip ?? loopbackIp();
  const port = await freePort(ip);
  const ibcmd = (args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> => runTool('ibcmd', args, { home, env, timeoutMs: 60_000 });
  const init = await ibcmd(['-a', 'init', '--ip', ip, '--port', String(port)]);
  if (init.code !== 0) throw new Error(`ibcmd -a init failed: ${init.stderr}`);
  const confFile = path.join(home, 'etc', 'ibcmd.conf');
  const conf = parseJsonText(fs.readFileSync(confFile, 'utf8'), confFile) as IbcmdConf;
  if (setup.white) conf.white_list = setup.white;
  if (setup.black) conf.black_list = setup.black;
  if (setup.maxOutput) conf.exec.max_output_size = setup.maxOutput;
  if (setup.timeoutS) conf.exec.command_timeout = setup.timeoutS;
  if (setup.maxConcurrent) conf.exec.max_concurrent = setup.maxConcurrent;
  if (setup.maxFile) conf.files.max_file_size = setup.maxFile;
  if (setup.path) conf.exec.path = [...setup.path, ...conf.exec.path];
  if (setup.callers) {
    conf.callers = setup.callers;
    for (const c of setup.callers) ensureCredential(path.join(home, c.credential_file));
  }
  if (setup.auth) conf.auth = setup.auth;
  fs.writeFileSync(confFile, JSON.stringify(conf, null, 2));
  const credFile = path.join(home, 'keys', 'ibcmd.credential');
  const agent: AgentHome = {
    home,
    ip,
    port,
    credFile,
    sandbox: fs.realpathSync(path.join(home, conf.sandbox)),
    confFile,
    client: new IbcmdClient({ ip, port, secret: fs.readFileSync(credFile, 'utf8').trim(), timeoutMs: 60_000 }),
    ibcmd,
    pid: () => readPid(path.join(home, 'run', 'ibcmd.pid')),
  };
  if (setup.start !== false) {
    const r = await ibcmd(['-a', 'start']);
    if (r.code !== 0) throw new Error(`ibcmd -a start failed (${r.code}): ${r.stderr}`);
  }
  return agent;
}

/** The body of a refused request, as the agent answered it. */
export async function rawRequest(a: Pick<AgentHome, 'ip' | 'port'>, method: string, urlPath: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://${a.ip}:${a.port}${urlPath}`, { method, headers: init.headers, body: init.body });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

/**
 * A cluster of real hosts for tests and benches: scripts/netns-cluster.sh makes N network
 * namespaces (h1..hN, 198.18.0.(10+i)) behind a private switch namespace; every daemon of a host
 * runs inside its namespace (`ip netns exec`), in a home of its own under a private temporary
 * folder. Each host has its own address, so every host uses the same well-known ports, as real
 * hosts do (ibms 16001, ibas 18001, ibcmd 26001, sshd 22).
 *
 * Needs root and iproute2: {@link NetnsCluster.up} answers a reason to skip when they are not
 * there. Teardown: every home reaped (processes, SysV objects), the namespaces deleted (which
 * also ends sshd and anything else left in them), the folder removed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { parseJsonText } from '../../lib/config/load.js';
import { collect, reapHome, ROOT, runTool, type RunResult } from './procs.js';

export const NETNS_SCRIPT = path.join(ROOT, 'scripts', 'netns-cluster.sh');
export const PORTS = { ibms: 16001, ibas: 18001, ibcmd: 26001 } as const;

export interface NetHost {
  name: string;
  ip: string;
  ns: string;
}

export function must(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Deep-merge a patch into a JSON config file (comments are dropped). */
export function patchJson(file: string, patch: Record<string, unknown>): void {
  const merge = (into: Record<string, unknown>, p: Record<string, unknown>): Record<string, unknown> => {
    for (const [k, v] of Object.entries(p)) {
      const cur = into[k];
      if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) merge(cur as Record<string, unknown>, v as Record<string, unknown>);
      else into[k] = v;
    }
    return into;
  };
  const conf = parseJsonText(fs.readFileSync(file, 'utf8'), file) as Record<string, unknown>;
  fs.writeFileSync(file, `${JSON.stringify(merge(conf, patch), null, 2)}\n`, { mode: 0o600 });
}

export class NetnsCluster {
  readonly name: string;
  readonly root: string;
  readonly hosts: NetHost[];
  readonly #homes: string[] = [];
  readonly #children = new Set<ChildProcess>();

  private constructor(name: string, root: string, hosts: NetHost[]) {
    this.name = name;
    this.root = root;
    this.hosts = hosts;
  }

  /** Make N hosts, or answer why this machine cannot (root, iproute2). */
  static up(t: Test, n: number): NetnsCluster | string {
    if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
    if (spawnSync('ip', ['-V']).status !== 0) return 'needs iproute2 (ip)';
    // leftovers of a run that crashed
    spawnSync('bash', [NETNS_SCRIPT, 'gc'], { stdio: 'ignore' });
    const name = `t${Math.random().toString(36).slice(2, 9)}`.slice(0, 8);
    const r = spawnSync('bash', [NETNS_SCRIPT, 'up', name, String(n)], { encoding: 'utf8' });
    if (r.status === 3) return r.stderr.trim();
    if (r.status !== 0) throw new Error(`netns-cluster.sh up ${name} ${n}: ${r.stderr}`);
    const hosts = r.stdout.trim().split('\n').map((l) => {
      const [h, ip] = l.split(' ');
      return { name: h!, ip: ip!, ns: `ibp-${name}-${h}` };
    });
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `ibp-netns-${name}-`));
    const c = new NetnsCluster(name, root, hosts);
    t.teardown(async () => {
      for (const ch of c.#children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
      if (!t.passing()) process.stderr.write(c.logTails());
      await Promise.all(c.#homes.map((h) => reapHome(h)));
      spawnSync('bash', [NETNS_SCRIPT, 'down', name], { stdio: 'ignore' });
      fs.rmSync(root, { recursive: true, force: true });
    });
    return c;
  }

  host(name: string): NetHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name} in ${this.name}`);
    return h;
  }

  /** A new home folder (`<name>-home`), reaped at teardown. */
  home(name: string): string {
    const home = path.join(this.root, `${name}-home`);
    fs.mkdirSync(home, { recursive: true });
    this.#homes.push(home);
    return home;
  }

  /** Run a tool of bin/ inside a host with a home. */
  tool(host: NetHost, home: string, tool: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return runTool(tool, args, { home, netns: host.ns, timeoutMs });
  }

  /** Run a bash script of scripts/ inside a host, with a home and extra environment. */
  script(host: NetHost, home: string, script: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 180_000): Promise<RunResult> {
    const child = spawn('ip', ['netns', 'exec', host.ns, 'bash', path.join(ROOT, 'scripts', script), ...args], {
      env: { ...process.env, IBP_HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return collect(child, undefined, timeoutMs, `${script} ${args.join(' ')}`);
  }

  /** Start a long-running process inside a host (killed at teardown if still running). */
  spawn(host: NetHost, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', host.ns, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Start an OpenSSH server inside a host; its sessions get IBP_HOME=home. */
  sshd(host: NetHost, home: string): RunResult {
    const r = spawnSync('bash', [NETNS_SCRIPT, 'sshd', this.name, host.name, home], { encoding: 'utf8' });
    return { code: r.status, signal: r.signal as NodeJS.Signals | null, stdout: r.stdout, stderr: r.stderr };
  }

  /** The client key and known_hosts file of this cluster's ssh servers. */
  sshFiles(): { key: string; knownHosts: string } {
    const r = spawnSync('bash', [NETNS_SCRIPT, 'ssh-files', this.name], { encoding: 'utf8' });
    const [key, knownHosts] = r.stdout.trim().split(' ');
    return { key: key!, knownHosts: knownHosts! };
  }

  /** The last lines of every log of every home (for a failed test). */
  logTails(lines = 25): string {
    let out = '';
    for (const home of this.#homes) {
      const dir = path.join(home, 'log');
      if (!fs.existsSync(dir)) continue;
      for (const f of fs.readdirSync(dir)) {
        const file = path.join(dir, f);
        try {
          if (!fs.statSync(file).isFile()) continue;
          out += `----- ${path.basename(home)}/log/${f}\n${fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')}\n`;
        } catch {
          // rotated away
        }
      }
    }
    return out;
  }
}

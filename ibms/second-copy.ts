/**
 * ibms.conf `misc.second_config_dump`: where every save also sends the registry's config, so that
 * a registry started elsewhere from that copy can serve the cluster (agents resync by epoch).
 *
 *   ''                           no second copy
 *   a folder (absolute, or relative to the home)    written atomically, as the main files
 *   ibcmd://IP[:PORT]            put into that ibcmd agent's sandbox (the admin credential file
 *                                keys/ibcmd.credential of this home)
 *   ssh://USER@IP[:PORT]/DIR     streamed over OpenSSH (key keys/ssh_id_ed25519, known hosts
 *                                etc/ssh_known_hosts of this home) into DIR (relative: the remote
 *                                home), each file written under a temporary name then renamed
 *
 * What is sent: the three config files, the node credentials (keys/node_<N>.credential), which
 * a registry needs to accept the agents it takes over, and the node key pairs
 * (keys/node_<N>.keys), without which it would give every node new keys. Both are secrets: over
 * ibcmd they travel as its requests do (docs/security.md); ssh encrypts them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { IbpError } from '../lib/errors.js';
import type { Home } from '../lib/home.js';

export type SecondTarget =
  | { kind: 'dir'; dir: string }
  | { kind: 'ibcmd'; ip: string; port: number }
  | { kind: 'ssh'; user: string; ip: string; port: number; dir: string };

export interface CopyFile {
  name: string;
  data: string | Buffer;
}

const IBCMD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ibcmd');
const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Parse the setting; throws IBP_ERR_CFG_INVALID-style errors naming the value. */
export function parseSecondTarget(value: string, home: Home): SecondTarget | undefined {
  if (value === '') return undefined;
  const bad = (why: string): IbpError => new IbpError('IBP_ERR_REG_INVALID', { detail: `misc.second_config_dump "${value}": ${why}` });
  if (value.startsWith('ibcmd://')) {
    const m = /^ibcmd:\/\/([^:/]+)(?::(\d{1,5}))?\/?$/.exec(value);
    if (!m || !net.isIPv4(m[1]!)) throw bad('expected ibcmd://IP[:PORT]');
    const port = Number(m[2] ?? 26001);
    if (port < 1 || port > 65535) throw bad('port must be 1..65535');
    return { kind: 'ibcmd', ip: m[1]!, port };
  }
  if (value.startsWith('ssh://')) {
    const m = /^ssh:\/\/([A-Za-z0-9_][A-Za-z0-9_.-]*)@([^:/]+)(?::(\d{1,5}))?\/(.+)$/.exec(value);
    if (!m || !net.isIPv4(m[2]!)) throw bad('expected ssh://USER@IP[:PORT]/DIR');
    const port = Number(m[3] ?? 22);
    if (port < 1 || port > 65535) throw bad('port must be 1..65535');
    if (!/^[A-Za-z0-9_./-]+$/.test(m[4]!) || m[4]!.split('/').includes('..')) throw bad('DIR: letters, digits, _ . / - only, no ".."');
    return { kind: 'ssh', user: m[1]!, ip: m[2]!, port, dir: m[4]! };
  }
  if (/^[a-z]+:\/\//.test(value)) throw bad('unknown scheme: a folder, ibcmd://IP[:PORT] or ssh://USER@IP[:PORT]/DIR');
  return { kind: 'dir', dir: home.resolve(value) };
}

export function describeTarget(t: SecondTarget): string {
  switch (t.kind) {
    case 'dir': return t.dir;
    case 'ibcmd': return `ibcmd://${t.ip}:${t.port}`;
    case 'ssh': return `ssh://${t.user}@${t.ip}:${t.port}/${t.dir}`;
  }
}

/** The node credentials and node key pairs of a registry home, as files to send along. */
export function credentialFiles(home: Home): CopyFile[] {
  const dir = home.dir('keys');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => /^node_[A-Za-z0-9_.-]+\.(credential|keys)$/.test(n));
  } catch {
    return [];
  }
  return names.map((name) => ({ name, data: fs.readFileSync(path.join(dir, name)) }));
}

function run(argv: string[], input: Buffer | undefined, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'], env });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { if (output.length < 65536) output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { if (output.length < 65536) output += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 11, output: e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
    if (input) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
  });
}

/**
 * Send the files to a remote target (ibcmd or ssh). Answers where each landed; throws
 * IBP_ERR_REG_SAVE naming the target and the file that failed.
 */
export async function sendSecondCopy(t: Exclude<SecondTarget, { kind: 'dir' }>, files: CopyFile[], home: Home): Promise<string[]> {
  const out: string[] = [];
  const env = { ...process.env, IBP_HOME: home.root };
  const where = describeTarget(t);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibms-second-'));
  try {
    for (const f of files) {
      if (!PLAIN.test(f.name)) throw new IbpError('IBP_ERR_REG_SAVE', { file: `${where}/${f.name}`, detail: 'not a plain file name' });
      const data = Buffer.isBuffer(f.data) ? f.data : Buffer.from(f.data);
      let r: { code: number; output: string };
      if (t.kind === 'ibcmd') {
        const local = path.join(tmp, f.name);
        fs.writeFileSync(local, data, { mode: 0o600 });
        r = await run([process.execPath, IBCMD_BIN, '--ip', t.ip, '--port', String(t.port), '--credential-file', home.keys('ibcmd.credential'), '-a', 'putfile', '--file', local, '--as', f.name], undefined, env);
        fs.rmSync(local, { force: true });
      } else {
        const dir = t.dir;
        const remote = `d=${JSON.stringify(dir)}; case "$d" in /*) ;; *) d="$HOME/$d" ;; esac; mkdir -p "$d" && umask 077 && cat > "$d/${f.name}.part" && mv -f "$d/${f.name}.part" "$d/${f.name}"`;
        r = await run(['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'PasswordAuthentication=no',
          '-o', `UserKnownHostsFile=${home.etc('ssh_known_hosts')}`, '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
          '-i', home.keys('ssh_id_ed25519'), '-p', String(t.port), '-l', t.user, t.ip, '--', remote], data, env);
      }
      if (r.code !== 0) throw new IbpError('IBP_ERR_REG_SAVE', { file: `${where}/${f.name}`, detail: `exit ${r.code}: ${r.output.trim().split('\n').pop() ?? ''}` });
      out.push(`${where}/${f.name}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

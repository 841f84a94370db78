/**
 * How the registry's admin side reaches a cluster host to run a command there (scale-out and
 * scale-in): the two transports of etc/ibp_cluster.conf, with the cluster scripts' conventions
 * (scripts/cluster-control.sh):
 *
 *   ssh     OpenSSH client with an argv (never a shell string on this side): key only, BatchMode,
 *           strict host keys from the admin home's etc/ssh_known_hosts; the remote shell runs the
 *           command in the host's IBP_HOME (default its $HOME) with its current release's scripts/
 *           and bin/ first on the PATH.
 *   ibcmd   the controlled agent (bin/ibcmd -a execmd), which applies its own black and white
 *           lists and runs the command in its home with its exec.path.
 *
 * Exit codes as the cluster scripts report them: the remote command's, or 11 when the host cannot
 * be reached (ssh's own 255), 10 when ibcmd refused the command.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type TransportKind = 'ssh' | 'ibcmd';
export const TRANSPORT_KINDS: readonly TransportKind[] = ['ssh', 'ibcmd'];

export interface HostAddress {
  ip: string;
  user: string;
  transport: TransportKind;
  /** ssh port (22) or ibcmd port (26001) by default. */
  port?: number;
}

export interface RemoteResult {
  code: number;
  output: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const IBCMD_BIN = path.join(ROOT, 'bin', 'ibcmd');
export const DEFAULT_PORT: Record<TransportKind, number> = { ssh: 22, ibcmd: 26001 };
const MAX_OUTPUT = 1024 * 1024;

export interface TransportFiles {
  /** The admin home (keys/, etc/). */
  home: string;
  /** ssh private key (default keys/ssh_id_ed25519 of the home). */
  sshKey?: string;
  /** known_hosts (default etc/ssh_known_hosts of the home). */
  knownHosts?: string;
  /** ibcmd credential file (default keys/ibcmd.credential of the home). */
  ibcmdCredential?: string;
}

/** Run a command line on a host; never throws for a failing command (see the code). */
export function runOnHost(h: HostAddress, cmdline: string, files: TransportFiles, timeoutMs = 120_000): Promise<RemoteResult> {
  const port = h.port ?? DEFAULT_PORT[h.transport];
  let argv: string[];
  if (h.transport === 'ssh') {
    const remote = 'IBP_HOME="${IBP_HOME:-$HOME}"; export IBP_HOME; PATH="${IBP_HOME}/current/scripts:${IBP_HOME}/current/bin:${PATH}"; cd "${IBP_HOME}" && ' + cmdline;
    argv = ['ssh', '-n', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'PasswordAuthentication=no',
      '-o', `UserKnownHostsFile=${files.knownHosts ?? path.join(files.home, 'etc', 'ssh_known_hosts')}`,
      '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
      '-i', files.sshKey ?? path.join(files.home, 'keys', 'ssh_id_ed25519'), '-p', String(port), '-l', h.user, h.ip, '--', remote];
  } else {
    argv = [process.execPath, IBCMD_BIN, '--ip', h.ip, '--port', String(port),
      '--credential-file', files.ibcmdCredential ?? path.join(files.home, 'keys', 'ibcmd.credential'),
      '-a', 'execmd', '--cmd', cmdline, '--user', h.user];
  }
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IBP_HOME: files.home } });
    let output = '';
    const take = (d: Buffer): void => {
      if (output.length < MAX_OUTPUT) output += d.toString('utf8');
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 11, output: `${output}${e.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let c = code ?? 128 + (signal ? 9 : 0);
      if (h.transport === 'ssh' && c === 255) c = 11;
      resolve({ code: c, output: signal ? `${output}(killed after ${timeoutMs} ms)` : output });
    });
  });
}

/**
 * Helpers shared by the process-level tests: temporary homes, unique loopback addresses and ports,
 * running the real command-line tools, polling with deadlines, and teardown that leaves no
 * process and no SysV object behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { homeKeyBase } from '../../lib/shm/keys.js';
import { destroySegment, listSegments } from '../../lib/shm/sysv.js';
import { isAlive } from '../../lib/pidfile.js';

export { isAlive };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = (tool: string): string => path.join(ROOT, 'bin', tool);

/** A loopback address of its own for this test process (127.x.y.z, x ≥ 1): ports never collide. */
export function loopbackIp(): string {
  const r = (n: number) => 1 + Math.floor(Math.random() * n);
  return `127.${r(250)}.${r(250)}.${r(250)}`;
}

export async function freePort(ip = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, ip, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run a tool of bin/ to completion (with a deadline) and collect its output. */
export async function runTool(tool: string, args: string[], opts: { home?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; netns?: string } = {}): Promise<RunResult> {
  // netns: run inside that network namespace (a test host of scripts/netns-cluster.sh)
  const argv = [process.execPath, BIN(tool), ...args];
  if (opts.netns) argv.unshift('ip', 'netns', 'exec', opts.netns);
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, ...(opts.home ? { IBP_HOME: opts.home } : {}), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return collect(child, opts.input, opts.timeoutMs ?? 60_000, `${tool} ${args.join(' ')}`);
}

export async function collect(child: ChildProcess, input: string | undefined, timeoutMs: number, what: string): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin?.on('error', () => undefined); // the child may exit before reading (EPIPE)
  child.stdin?.end(input ?? '');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Poll `cond` until it is truthy or the deadline passes (then throw, naming `what`). */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Pids of every process whose command line or environment mentions `home`. */
export function processesOfHome(home: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8');
      if (cmd.includes(home) || env.split('\0').includes(`IBP_HOME=${home}`)) pids.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Teardown for a home: SIGTERM every process of it, SIGKILL what is left after a deadline,
 * then remove the SysV segments and semaphores of its key block. Returns what had to be killed.
 */
export async function reapHome(home: string, graceMs = 5000): Promise<{ terminated: number[]; killed: number[] }> {
  const terminated = processesOfHome(home);
  for (const pid of terminated) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && terminated.some(isAlive)) await new Promise((r) => setTimeout(r, 25));
  const killed = processesOfHome(home);
  for (const pid of killed) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await waitFor('killed processes to go', () => !killed.some(isAlive), 5000).catch(() => undefined);
  await removeHomeIpc(home);
  return { terminated, killed };
}

/** SysV segments of a home's key block that exist now. */
export async function segmentsOfHome(home: string): Promise<{ key: number; nattch: number }[]> {
  const base = homeKeyBase(home);
  return (await listSegments()).filter((s) => s.key >= base && s.key <= base + 255);
}

export async function removeHomeIpc(home: string): Promise<void> {
  for (const s of await segmentsOfHome(home)) destroySegment(s.key);
  const base = homeKeyBase(home);
  // semaphores: /proc/sysvipc/sem, removed with ipcrm to keep this helper free of semctl details
  try {
    const rows = fs.readFileSync('/proc/sysvipc/sem', 'utf8').trim().split('\n').slice(1);
    for (const r of rows) {
      const [key, semid] = r.trim().split(/\s+/).map(Number);
      if (key! >= base && key! <= base + 255) spawn('ipcrm', ['-s', String(semid)], { stdio: 'ignore' });
    }
  } catch {
    // no semaphores
  }
}

/**
 * The process has exited and released its files: no such pid, or a zombie waiting for its parent
 * whose other threads are gone too. (A killed Node process's main thread turns zombie while its
 * other threads may still be exiting, holding the shared file table: a listen socket then still
 * accepts connections and resets them.)
 */
export function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (!stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return fs.readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

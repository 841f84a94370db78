/**
 * Starting, stopping and asking after daemons, the same way for ibms, ibma, ibas and ibcmd.
 *
 * `-a start` re-runs the same entry point detached, with IBP_DAEMON_CHILD=1 in its environment
 * and a readiness pipe on fd 3; its stderr is appended to `<log dir>/<tool>_stderr.log`. The
 * child calls {@link reportReady} once it serves (or
 * {@link reportFailed}), and the starting command returns 0 only then — or prints why not and
 * exits non-zero. `-a stop` sends SIGTERM and waits for the process to be gone.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from './errors.js';
import { isAlive, runningPid } from './pidfile.js';

const READY_FD = 3;

export function isDaemonChild(): boolean {
  return process.env.IBP_DAEMON_CHILD === '1';
}

export interface StartOptions {
  tool: string;
  pidFile: string;
  /** The log to point the user at when the start fails. */
  logFile: string;
  /** argv for the child (without node), normally process.argv.slice(1). */
  argv?: string[];
  /** How long to wait for readiness. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Fds the child inherits as fd 4, 5, … (after the ready pipe on fd 3): ibas's USR2 listen socket. */
  inheritFds?: number[];
  /** Told the child's pid as soon as it is spawned (before it is ready). */
  onSpawn?: (pid: number) => void;
}

/** Spawn the daemon child and wait for it to report ready. Resolves with its pid. */
export async function startDaemon(opts: StartOptions): Promise<number> {
  const pid = runningPid(opts.pidFile);
  if (pid !== undefined) throw new IbpError('IBP_ERR_DAEMON_RUNNING', { tool: opts.tool, pid, pidfile: opts.pidFile });
  const argv = opts.argv ?? process.argv.slice(1);
  // The daemon's stderr goes to a file next to its log: it outlives this starter (no EPIPE when
  // the daemon writes later), and it catches what no logger can (native aborts, early crashes).
  const stderrFile = path.join(path.dirname(opts.logFile), `${opts.tool}_stderr.log`);
  fs.mkdirSync(path.dirname(stderrFile), { recursive: true });
  const stderrFd = fs.openSync(stderrFile, 'a');
  const stderrStart = fs.fstatSync(stderrFd).size;
  const child = spawn(process.execPath, [...process.execArgv, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', stderrFd, 'pipe', ...(opts.inheritFds ?? [])],
    env: { ...(opts.env ?? process.env), IBP_DAEMON_CHILD: '1' },
  });
  fs.closeSync(stderrFd);
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const stderrTail = (): string => {
    try {
      const text = fs.readFileSync(stderrFile).subarray(stderrStart).toString('utf8').trim();
      return text ? `: ${text.split('\n').slice(-3).join(' | ')}` : '';
    } catch {
      return '';
    }
  };
  const ready = child.stdio[READY_FD] as NodeJS.ReadableStream;
  const result = await new Promise<{ ok: boolean; detail: string }>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ ok: false, detail: `no ready report within ${timeoutMs} ms` }), timeoutMs);
    ready.setEncoding('utf8');
    ready.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        const line = text.slice(0, nl);
        resolve(line === 'READY' ? { ok: true, detail: '' } : { ok: false, detail: line.replace(/^FAILED /, '') });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `exited with ${signal ?? `code ${code}`}${stderrTail()}` });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: e.message });
    });
  });
  (ready as unknown as { destroy(): void }).destroy();
  if (!result.ok) {
    if (child.exitCode === null && child.pid) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    throw new IbpError('IBP_ERR_DAEMON_START', { tool: opts.tool, detail: result.detail, log: opts.logFile });
  }
  child.unref();
  return child.pid!;
}

function writeReadyPipe(line: string): void {
  if (!isDaemonChild()) return;
  try {
    fs.writeSync(READY_FD, `${line}\n`);
    fs.closeSync(READY_FD);
  } catch {
    // the starter is gone: nothing to tell
  }
}

/** Tell the starting command that the daemon serves. */
export function reportReady(): void {
  writeReadyPipe('READY');
}

export function reportFailed(detail: string): void {
  writeReadyPipe(`FAILED ${detail.replace(/\n/g, ' ')}`);
}

export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}

/** SIGTERM the daemon named by the pid file and wait until it is gone. */
export async function stopDaemon(tool: string, pidFile: string, opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<number> {
  const pid = runningPid(pidFile);
  if (pid === undefined) throw new IbpError('IBP_ERR_DAEMON_NOT_RUNNING', { tool, pidfile: pidFile });
  process.kill(pid, opts.signal ?? 'SIGTERM');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  if (!(await waitFor(() => !isAlive(pid), timeoutMs, 25))) throw new IbpError('IBP_ERR_DAEMON_STOP', { tool, pid, ms: timeoutMs });
  return pid;
}

/** SIGKILL the daemon (`-a kill`). */
export async function killDaemon(tool: string, pidFile: string): Promise<number> {
  return stopDaemon(tool, pidFile, { signal: 'SIGKILL', timeoutMs: 5000 });
}

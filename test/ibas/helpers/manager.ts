/**
 * An ibas manager run as the test's own child, to read its exit code: exactly what `ibas -a start`
 * runs detached (the daemon child, IBP_DAEMON_CHILD=1, ready pipe on fd 3 — lib/daemon.ts), but
 * attached, so the test can wait for it and see how it ended.
 */
import { spawn } from 'node:child_process';
import type { Test } from 'tap';
import { BIN } from '../../helpers/procs.js';
import type { IbasHome } from './server.js';

export interface AttachedManager {
  pid: number;
  /** Resolves once the manager reported READY; rejects with what it reported otherwise. */
  ready: Promise<void>;
  /** The manager's exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** `p`, or undefined after `ms` (the timer is cleared, so it never holds the test process). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(r, ms, undefined)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function startAttachedManager(t: Test, s: IbasHome): AttachedManager {
  const child = spawn(process.execPath, [BIN('ibas'), '-f', s.conf, '-a', 'start'], {
    env: { ...process.env, IBP_HOME: s.home, IBP_DAEMON_CHILD: '1' },
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const ready = new Promise<void>((resolve, reject) => {
    let text = '';
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => {
      text += d;
      if (!text.includes('\n')) return;
      const line = text.slice(0, text.indexOf('\n'));
      if (line === 'READY') resolve();
      else reject(new Error(`the manager reported: ${line}`));
    });
    pipe.on('error', () => undefined);
    void exited.then(({ code, signal }) => reject(new Error(`the manager exited (${signal ?? code}) before it was ready: ${err}`)));
  });
  ready.catch(() => undefined);
  return { pid: child.pid!, ready, exited, stderr: () => err };
}

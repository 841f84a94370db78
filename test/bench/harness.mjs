// What the benchmarks share: paths, the built code, a loopback address of their own, polling
// with a deadline, and the "where and when" lines every result file carries.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Import a built module: dist('lib/shm/sysv.js'). */
export const dist = (p) => import(path.join(ROOT, 'dist', p));

/** A random 127.x.y.z of this run: its ports never collide with a test or another bench. */
export const loopbackIp = () => `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (s) => process.stdout.write(`${s}\n`);

export function freePort(ip) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, ip, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Poll `cond` until it is truthy (returned) or `ms` pass (throws, naming `what`). */
export async function waitFor(what, cond, ms = 30_000, stepMs = 25) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function gitCommit() {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

export const loadAverage = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

/** "2 × AMD EPYC, 23.5 GiB, Linux 6.x, Node v20.x" */
export function machine() {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
}

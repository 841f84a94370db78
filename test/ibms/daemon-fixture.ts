/**
 * Process-level fixture: a temporary home, `ibms -a init` on a loopback address of its own, optional
 * data and ibms.conf changes, `ibms -a start`, and a teardown that stops it and reaps the home.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { Test } from 'tap';
import { freePort, loopbackIp, reapHome, runTool, type RunResult } from '../helpers/procs.js';
import type { ConfigData } from '../../ibms/store.js';
import type { IbmsConf } from '../../lib/config/ibms-conf.js';
import { Home } from '../../lib/home.js';
import { writeData } from './fixture.js';

export interface Daemon {
  home: Home;
  ip: string;
  port: number;
  admin: string;
  ibms(...args: string[]): Promise<RunResult>;
  /** ibms … that must succeed; answers stdout. */
  ok(...args: string[]): Promise<string>;
  /** A raw HTTP request to the daemon. */
  http(method: string, path: string, opts?: { body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>;
  start(): Promise<RunResult>;
  stop(): Promise<RunResult>;
}

export async function makeDaemon(t: Test, opts: { data?: Partial<ConfigData>; conf?: (c: IbmsConf) => void; start?: boolean } = {}): Promise<Daemon> {
  const home = new Home(t.testdir());
  t.teardown(async () => {
    await runTool('ibms', ['-a', 'stop'], { home: home.root, timeoutMs: 60_000 }).catch(() => undefined);
    await reapHome(home.root);
  });
  const ip = loopbackIp();
  const port = await freePort(ip);
  const ibms = (...args: string[]) => runTool('ibms', args, { home: home.root, timeoutMs: 90_000 });
  const init = await ibms('-a', 'init', '--ip', ip, '--port', String(port));
  if (init.code !== 0) throw new Error(`ibms -a init failed: ${init.stderr}`);
  if (opts.data) writeData(home, opts.data);
  if (opts.conf) {
    const file = home.etc('ibms.conf');
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as IbmsConf;
    opts.conf(c);
    fs.writeFileSync(file, JSON.stringify(c, null, 2));
  }
  const admin = fs.readFileSync(home.keys('admin.credential'), 'utf8').trim();
  const d: Daemon = {
    home,
    ip,
    port,
    admin,
    ibms,
    async ok(...args) {
      const r = await ibms(...args);
      if (r.code !== 0) throw new Error(`ibms ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    http(method, path, o = {}) {
      return new Promise((resolve, reject) => {
        const req = http.request({ host: ip, port, method, path, agent: false, headers: { authorization: `Bearer ${admin}`, ...o.headers } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error('http request timed out')));
        req.on('error', reject);
        req.end(o.body);
      });
    },
    start: () => ibms('-a', 'start'),
    stop: () => ibms('-a', 'stop'),
  };
  if (opts.start !== false) {
    const r = await d.start();
    if (r.code !== 0) throw new Error(`ibms -a start failed (${r.code}): ${r.stderr}`);
  }
  return d;
}

/** Pids of the home's ibms monitor and worker, from /proc titles. */
export function ibmsPids(home: Home): { monitor?: number; workers: number[] } {
  const out: { monitor?: number; workers: number[] } = { workers: [] };
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmd.includes(home.etc('ibms.conf'))) continue;
      if (cmd.startsWith('ibms: monitor')) out.monitor = Number(d);
      else if (cmd.startsWith('ibms: worker')) out.workers.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * A home with a config space and an ibas.conf, for the ibas tests. The config space is published
 * by the REAL config-space writer (lib/shm/config-segment.ts, the one ibma uses) from this test
 * process, so a test does not depend on a running registry; test/ibas/e2e-registry.test.ts runs
 * the whole chain (ibms → ibma → ibas) instead.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { ConfigSpaceWriter } from '../../../lib/shm/config-segment.js';
import { homeKeyBase, KEY_SLOT } from '../../../lib/shm/keys.js';
import { parseJsonText } from '../../../lib/config/load.js';
import type { AppWithPackage, NodeBundle } from '../../../lib/config/model.js';
import { Home } from '../../../lib/home.js';
import { initHome } from '../../../ibma/init.js';
import { freePort, loopbackIp, reapHome, ROOT, runTool, waitFor, type RunResult } from '../../helpers/procs.js';
import { Scoreboard, type SlotView } from '../../../ibas/scoreboard.js';

export const NODE = 'ibas_test_node';
export const APPS_DIR = path.join(ROOT, 'build', 'apps');

export interface IbasSetup {
  mode?: 'FORK' | 'STATIC_WORKERPOOL' | 'DYNAMIC_WORKERPOOL';
  maxCount?: number;
  minIdle?: number;
  maxIdle?: number;
  maxProcessCount?: number;
  /** Changes to ibas.conf after `ibas -a init` (the parsed JSON object). */
  patch?: (conf: Record<string, any>) => void;
  /** Extra apps in the config space. */
  apps?: Partial<AppWithPackage>[];
  /** Do not publish a config space. */
  noSpace?: boolean;
  /** Key/values of the node in the config space. */
  kvs?: Record<string, string>;
  /** Public node key pairs in the config space (as ibma publishes them). */
  nodeKeys?: NodeBundle['node_keys'];
  /** More nodes in the config space (e.g. the nodes of those keys), without hosts. */
  nodes?: string[];
}

export interface IbasHome {
  home: string;
  ip: string;
  port: number;
  conf: string;
  ibmaConf: string;
  indexKey: number;
  writer?: ConfigSpaceWriter;
  /** Publish a changed bundle (next version) through the writer, as ibma does after a change. */
  republish(change: (b: NodeBundle) => void): void;
  scoreboardKey: number;
  lockKey: number;
  ibas(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** `ibas -a start`; `env` is added to the CLI's environment (the manager and its workers inherit it). */
  start(env?: NodeJS.ProcessEnv): Promise<number>;
  stop(): Promise<RunResult>;
  /** The manager's pid from the pid file. */
  managerPid(): number;
  slots(): SlotView[];
  log(name: 'monitor' | 'event' | number): string;
}

export function app(code: string, bin: string, extra: Partial<AppWithPackage> = {}): AppWithPackage {
  return { app: code, desc: `${code} for tests`, bin, timeout: 5, timeout2: 0, invalid: 0, server_node: NODE, sha256: '', size: 0, ...extra };
}

export const DEFAULT_APPS: AppWithPackage[] = [
  app('ibp_test_echo', 'ibp_test_echo.so'),
  app('ibp_test_file', 'ibp_test_file.so'),
  app('ibp_test_rc', 'ibp_test_rc.so'),
  app('ibp_test_invalid', 'ibp_test_echo.so', { invalid: 1 }),
  app('ibp_test_missing', 'ibp_test_no_such_file.so'),
  app('ibp_test_nosomain', 'ibp_test_nosomain.so'),
];

export async function setupIbas(t: Test, o: IbasSetup = {}): Promise<IbasHome> {
  const home = fs.realpathSync(t.testdir());
  const ip = loopbackIp();
  const port = await freePort(ip);
  const h = new Home(home);
  const ibmaConf = h.etc('ibma.conf');
  const base = homeKeyBase(home);
  const indexKey = base + KEY_SLOT.INDEX;
  initHome(h, ibmaConf, { node: NODE, ibmsIp: ip, ibmsPort: 1, credential: 'c'.repeat(32), indexKey });
  for (const f of fs.readdirSync(APPS_DIR)) if (f.endsWith('.so') || f.endsWith('.mjs')) fs.copyFileSync(path.join(APPS_DIR, f), h.so(f));
  let writer: ConfigSpaceWriter | undefined;
  let bundle: NodeBundle | undefined;
  const spaceOpts = { ibms: { ip, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 512 };
  t.teardown(async () => {
    await reapHome(home);
    try { writer?.removeAll(); } catch { /* gone */ }
  });
  if (!o.noSpace) {
    writer = new ConfigSpaceWriter(indexKey);
    const first: NodeBundle = {
      epoch: 'test', version: 1, this_node: NODE,
      nodes: [{ node: NODE, invalid: 0, hosts: [{ ip, port }], kvs: o.kvs ?? {} }, ...(o.nodes ?? []).map((node) => ({ node, invalid: 0 as const, hosts: [], kvs: {} }))],
      apps: [...DEFAULT_APPS, ...(o.apps ?? []).map((a) => app(a.app!, a.bin ?? 'ibp_test_echo.so', a))],
      ...(o.nodeKeys ? { node_keys: o.nodeKeys } : {}),
    };
    bundle = first;
    writer.publish(first, spaceOpts);
  }
  const conf = h.etc('ibas.conf');
  const ibas = (args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv) => runTool('ibas', args, { home, timeoutMs, ...(env ? { env } : {}) });
  const init = await ibas(['-a', 'init', '--ip', ip, '--port', String(port),
    '--mode', o.mode ?? 'STATIC_WORKERPOOL', '--max-count', String(o.maxCount ?? 2),
    ...(o.minIdle !== undefined ? ['--min-idle', String(o.minIdle)] : []),
    ...(o.maxIdle !== undefined ? ['--max-idle', String(o.maxIdle)] : []),
    '--max-process-count', String(o.maxProcessCount ?? 0)]);
  if (init.code !== 0) throw new Error(`ibas -a init failed: ${init.stderr}`);
  const parsed = parseJsonText(fs.readFileSync(conf, 'utf8'), conf) as Record<string, any>;
  parsed.monitor.heartbeat_interval = 60;
  o.patch?.(parsed);
  fs.writeFileSync(conf, JSON.stringify(parsed, null, 2));
  const self: IbasHome = {
    home, ip, port, conf, ibmaConf, indexKey, writer,
    republish(change) {
      if (!writer || !bundle) throw new Error('no config space to republish (noSpace)');
      change(bundle);
      bundle.version++;
      writer.publish(bundle, spaceOpts);
    },
    scoreboardKey: base + KEY_SLOT.SCOREBOARD,
    lockKey: base + KEY_SLOT.ACCEPT_LOCK,
    ibas,
    async start(env) {
      const r = await ibas(['-f', conf, '-a', 'start'], 60_000, env);
      if (r.code !== 0) throw new Error(`ibas -a start failed (${r.code}): ${r.stderr}\n${r.stdout}`);
      return self.managerPid();
    },
    stop: () => ibas(['-f', conf, '-a', 'stop']),
    managerPid() {
      return Number(fs.readFileSync(h.run('ibas.pid'), 'utf8').trim());
    },
    slots() {
      const sb = Scoreboard.attach(self.scoreboardKey);
      if (!sb) return [];
      try {
        return sb.all().filter((s) => s.state !== 'DEAD');
      } finally {
        sb.detach();
      }
    },
    log(name) {
      const tag = `ibas_${ip}-${port}`;
      const file = name === 'event' ? h.log('event.log') : name === 'monitor' ? h.log(`${tag}_monitor.log`) : h.log(`${tag}_worker_${name}.log`);
      try {
        return fs.readFileSync(file, 'utf8');
      } catch {
        return '';
      }
    },
  };
  return self;
}

/** Wait until the pool has `n` live workers, none starting. */
export async function waitWorkers(s: IbasHome, n: number, timeoutMs = 20_000): Promise<SlotView[]> {
  return waitFor(`${n} ready workers`, () => {
    const live = s.slots();
    return live.length === n && live.every((w) => w.state !== 'STARTING' && w.pid > 0) ? live : undefined;
  }, timeoutMs);
}

/** SysV semaphore sets of a home's key block (from /proc/sysvipc/sem). */
export function semaphoresOfHome(home: string): number[] {
  const base = homeKeyBase(home);
  try {
    return fs.readFileSync('/proc/sysvipc/sem', 'utf8').trim().split('\n').slice(1)
      .map((r) => Number(r.trim().split(/\s+/)[0]))
      .filter((k) => k >= base && k <= base + 255);
  } catch {
    return [];
  }
}

/** Every process, segment and semaphore of ibas is gone (the config space of the test stays). */
export async function assertStoppedClean(t: Test, s: IbasHome): Promise<void> {
  const { processesOfHome, segmentsOfHome } = await import('../../helpers/procs.js');
  await waitFor('ibas processes to be gone', () => processesOfHome(s.home).length === 0, 15_000).catch(() => undefined);
  t.same(processesOfHome(s.home), [], 'no process of the home is left');
  const segs = (await segmentsOfHome(s.home)).map((x) => x.key);
  t.notOk(segs.includes(s.scoreboardKey), 'the scoreboard segment is removed');
  t.notOk(segs.includes(homeKeyBase(s.home) + KEY_SLOT.REPLAY_CACHE), 'the replay-cache segment is removed');
  t.same(semaphoresOfHome(s.home), [], 'the accept-lock semaphore is removed');
  t.notOk(fs.existsSync(path.join(s.home, 'run', 'ibas.pid')), 'the pid file is removed');
}

/** Run `n` transactions on one long connection, checking each echo. */
export async function echoLoop(s: IbasHome, n: number, sizeMax = 2000): Promise<number> {
  const { TestClient } = await import('./client.js');
  const c = await TestClient.connect(s.ip, s.port);
  let ok = 0;
  try {
    for (let i = 0; i < n; i++) {
      const body = Buffer.alloc(Math.floor(Math.random() * sizeMax), `tx${i}-`);
      const r = await c.call('ibp_test_echo', body, { journal: `J${i}` });
      if (r.rc === 0 && r.body.equals(body)) ok++;
    }
  } finally {
    c.close();
  }
  return ok;
}

/**
 * Host choice end to end: node SRV served by two ibas homes (hosts A and B of the same node, each
 * with its own ibma), a client node CLI. Through the ibms CLI: host B is added while a long-lived
 * environment runs (it must pick it up), then a host C where nothing listens. A host made busy by
 * a slow app gets few new calls (measured split); a dead host is suspended for
 * retry_connect_timeval without the caller seeing an error, and tried again afterwards; a long
 * connection whose server stops re-opens on another host; a host that hangs (accept queue full)
 * costs connecting_timeout and is suspended.
 */
import t from 'tap';
import net from 'node:net';
import { Cluster, freezeIbas, type NodeHome, type ServerHome } from '../helpers/cluster.js';
import { freePort, waitFor } from '../helpers/procs.js';
import { createEnvironment, ConnectError, STEP, LOAD_SCALE, type IbacEnv, type IbacResponse } from '../../ibac/index.js';

const APPS = [
  { app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 10 },
  { app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 20 },
];
const RETRY_S = 3;

let cluster: Cluster;
let a: ServerHome;
let b: ServerHome;
let cli: NodeHome;
let env: IbacEnv;

t.before(async () => {
  cluster = await Cluster.start(t, { bins: APPS.map((x) => x.bin) });
  const portA = await freePort(cluster.ip);
  await cluster.configure({
    nodes: { SRV: [`${cluster.ip}:${portA}`], CLI: [] },
    apps: APPS,
    projects: [{ project: 'P', serverNodes: ['SRV'], clientNodes: ['CLI'], apps: APPS.map((x) => x.app) }],
  });
  await Promise.all([cluster.credential('SRV'), cluster.credential('CLI')]);
  [a, b, cli] = await Promise.all([
    cluster.server('SRV', { name: 'srv-a', port: portA, maxCount: 3, ibas: { comm: { listen_backlog: 2 } } }),
    cluster.server('SRV', { name: 'srv-b', maxCount: 3 }),
    cluster.agent('CLI', { ibac: { connecting_timeout: 1, retry_connect_timeval: RETRY_S } }),
  ]);
  await Promise.all([cluster.waitPackages(a, APPS.map((x) => x.bin)), cluster.waitPackages(b, APPS.map((x) => x.bin))]);
  await cluster.waitSpace(cli, 'node SRV with host A', (s) => s.hosts('SRV').length === 1);
  env = createEnvironment({ config: cli.ibmaConf });
  t.teardown(() => env.destroy());
  await waitFor('host A to serve', async () => (await env.requester('SRV', 'ibp_test_echo', 'ping')).host === a.hostKey, 30_000, 200);
});

async function calls(n: number, app = 'ibp_test_echo'): Promise<Map<string, number>> {
  const split = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r: IbacResponse = await env.requester('SRV', app, `c${i}`);
    if (r.body.toString() !== `c${i}`) throw new Error(`call ${i} answered ${r.body.toString()}`);
    split.set(r.host, (split.get(r.host) ?? 0) + 1);
  }
  return split;
}

t.test('a long-lived environment picks up a new host added through ibms', async (t) => {
  t.same(env.hosts('SRV').map((h) => h.key), [a.hostKey], 'only A at first');
  const only = await calls(5);
  t.same([...only.keys()], [a.hostKey]);
  const gen = env.generation;
  await cluster.admin(['-a', 'add_node_host', '--node', 'SRV', '--ip', b.ip, '--port', String(b.port)], ['-a', 'distribute_config']);
  await waitFor('the environment to see host B', () => {
    env.checkSwitch();
    return env.hosts('SRV').some((h) => h.key === b.hostKey);
  }, 30_000, 50);
  t.ok(env.generation > gen, `switched to generation ${env.generation}`);
  await waitFor('host B to serve', async () => (await env.requester('SRV', 'ibp_test_echo', 'b?', undefined, { host: b.hostKey })).host === b.hostKey, 30_000, 200);
  const split = await calls(20);
  t.ok((split.get(b.hostKey) ?? 0) > 0, `new calls reach the new host B: ${JSON.stringify([...split])} (loads ${env.hosts('SRV').map((h) => `${h.key}=${h.load}`).join(' ')})`);
});

t.test('a host made busy by a slow app gets few new calls', async (t) => {
  // two slow transactions pinned on A, started one after the other so that the second
  // pre-answer reports both (2 of 3 workers busy)
  const slow = [];
  for (let i = 0; i < 2; i++) {
    const conn = await env.connect('SRV', 'ibp_test_slow', { host: a.hostKey });
    slow.push({ conn, done: conn.sendRequestAndReceiveResponse('ibp_test_slow', '3000') });
    await waitFor(`slow transaction ${i} to run on A`, () => conn.step === STEP.RESPONSE, 10_000, 5);
  }
  const loadA = env.hosts('SRV').find((h) => h.key === a.hostKey)!.load;
  t.ok(loadA >= Math.round((2 * LOAD_SCALE) / 3), `A reported ${loadA}/${LOAD_SCALE}`);
  const t0 = Date.now();
  const split = await calls(30);
  const onB = split.get(b.hostKey) ?? 0;
  t.comment(`split while A is busy: A ${split.get(a.hostKey) ?? 0}, B ${onB} (in ${Date.now() - t0} ms)`);
  t.ok(onB >= 24, `most new calls went to the idle host B (${onB} of 30)`);
  for (const s of slow) {
    t.equal((await s.done).body.toString(), 'slept:3000', 'the slow transactions complete');
    s.conn.disconnect();
  }
});

t.test('a dead host is suspended, costs the caller nothing, and is tried again later', async (t) => {
  const portC = await freePort(cluster.ip);
  const c = `${cluster.ip}:${portC}`;
  await cluster.admin(['-a', 'add_node_host', '--node', 'SRV', '--ip', cluster.ip, '--port', String(portC)], ['-a', 'distribute_config']);
  await waitFor('the environment to see host C', () => {
    env.checkSwitch();
    return env.hosts('SRV').some((h) => h.key === c);
  }, 30_000, 50);
  const stateC = () => env.hosts('SRV').find((h) => h.key === c)!;
  t.equal(stateC().load, 0, 'C never answered: lowest load, so it is chosen first');
  const before = Date.now();
  const first = await env.requester('SRV', 'ibp_test_echo', 'through');
  t.equal(first.body.toString(), 'through', 'the call succeeded');
  t.not(first.host, c, `on another host (${first.host})`);
  const r1 = stateC().retryAt;
  t.ok(r1 >= before + RETRY_S * 1000 && r1 <= Date.now() + RETRY_S * 1000, `C suspended until now + retry_connect_timeval (${r1 - before} ms)`);
  t.equal(stateC().usable, false);
  let inWindow = 0;
  while (Date.now() < r1 - 1000 && inWindow < 10) {
    const r = await env.requester('SRV', 'ibp_test_echo', 'w');
    t.not(r.host, c);
    inWindow++;
  }
  t.equal(stateC().retryAt, r1, `${inWindow} calls inside the window did not try C`);
  await waitFor('the suspension to end', () => Date.now() > r1, RETRY_S * 1000 + 5000, 50);
  t.equal(stateC().usable, true, 'usable again');
  const again = await env.requester('SRV', 'ibp_test_echo', 'again');
  t.not(again.host, c);
  t.ok(stateC().retryAt > r1, 'C was tried again (and suspended again)');
});

t.test('a long connection whose server stops re-opens on another host', async (t) => {
  const conn = await env.connect('SRV', 'ibp_test_echo', { exclude: new Set([a.hostKey]) });
  t.equal(conn.host, b.hostKey, 'connected to B');
  t.equal((await conn.sendRequestAndReceiveResponse('ibp_test_echo', 'on B')).host, b.hostKey);
  const stop = await b.run('ibas', ['-a', 'stop'], 60_000);
  t.equal(stop.code, 0, `ibas -a stop on B: ${stop.stderr}`);
  await waitFor('B to close the idle connection', () => !conn.connected, 10_000, 20);
  const r = await conn.sendRequestAndReceiveResponse('ibp_test_echo', 'moved');
  t.equal(r.body.toString(), 'moved', 'the next call succeeds');
  t.equal(r.host, a.hostKey, 'on A (B is gone, C is dead)');
  t.equal(conn.host, a.hostKey);
  conn.disconnect();
});

t.test('a host that hangs (its accept queue full) times out within connecting_timeout and is suspended', async (t) => {
  const held: net.Socket[] = [];
  const pids = freezeIbas(a);
  t.teardown(() => {
    for (const s of held) s.destroy();
    for (const p of pids) try { process.kill(p, 'SIGCONT'); } catch { /* gone */ }
  });
  // connects complete while the kernel can queue them (listen_backlog 2); then SYNs are dropped
  let queued = 0;
  for (let i = 0; i < 64; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: a.ip, port: a.port });
      held.push(s);
      const timer = setTimeout(() => resolve(false), 300);
      s.once('error', () => resolve(false));
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!ok) break;
    queued++;
  }
  t.ok(queued < 64, `A's accept queue is full after ${queued} connections`);
  const e = await env.requester('SRV', 'ibp_test_echo', 'hang').catch((x: unknown) => x);
  t.ok(e instanceof ConnectError, `every host failed: ${(e as Error).message}`);
  const attempt = (e as ConnectError).attempts.find((x) => x.startsWith(`${a.hostKey}:`));
  t.match(attempt, /no connection within 1000 ms \(connecting_timeout\)/, 'A was given connecting_timeout, no more');
  const stateA = env.hosts('SRV').find((h) => h.key === a.hostKey)!;
  t.ok(stateA.retryAt > Date.now(), 'A is suspended');
});

/**
 * Bad input from "ibms": a fake registry on loopback sends answers a real one never would. Each is
 * rejected with a log line, the agent stays up and the config space keeps the last good config;
 * when good answers come back the agent catches up (also across an epoch change).
 */
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { FakeIbms, type AnswerMode } from './fake-ibms.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const CRED = 'cred-ALPHA-0123456789abcdef';

function bundle(version: number, kv: string, epoch = 'E1'): NodeBundle {
  return {
    epoch,
    version,
    this_node: 'ALPHA',
    nodes: [
      { node: 'ALPHA', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18001 }], kvs: { k: kv, pad: 'x'.repeat(400) } },
      { node: 'BETA', invalid: 0, hosts: [{ ip: '127.0.0.2', port: 18002 }, { ip: '127.0.0.3', port: 18002 }], kvs: {} },
    ],
    apps: [{ app: 'APP1', desc: 'first app', bin: 'app1.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'BETA', sha256: '', size: 0 }],
  };
}

const ip = loopbackIp();
const fake = new FakeIbms(ip, bundle(1, 'v1'));
let a: AgentHome;
let space: ConfigSpace;
let gen1 = 0;

t.before(async () => {
  const root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
  a = await makeAgentHome(t, { root, node: 'ALPHA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED, agent: { max_bundle_size: 1 << 20 } });
});

t.test('the agent starts and publishes the first bundle', async (t) => {
  const started = await a.ibma(['-a', 'start']);
  t.equal(started.code, 0, `ibma -a start: ${started.stderr}`);
  space = await openSpace(top, a.indexKey);
  t.equal(space.kv('ALPHA', 'k'), 'v1', 'the first bundle is in the space');
  t.equal(space.hosts('BETA').length, 2);
  t.equal(space.app('APP1')?.timeout2, 7.5, 'timeout2 0 → timeout × 1.5');
  gen1 = space.generation;
});

t.test('the agent asks as the contract says', async (t) => {
  const watch = fake.seen.find((s) => s.path === '/v1/agent/config');
  t.ok(watch, 'a watch was made');
  t.equal(watch!.auth, `Bearer ${CRED}`, 'with the node credential');
  t.match(watch!.acceptEncoding ?? '', /lz4/, 'accepting lz4');
  t.equal(watch!.query.get('node'), 'ALPHA');
  await waitFor('a held watch with index 1 and epoch E1', () => fake.seen.some((s) => s.path === '/v1/agent/config' && s.query.get('index') === '1' && s.query.get('epoch') === 'E1' && Number(s.query.get('wait')) > 0));
  await waitFor('a heartbeat', () =>
    fake.seen.some((s) => {
      const b = s.body as { role?: string; node?: string; pid?: number } | undefined;
      return s.path === '/v1/agent/heartbeat' && s.method === 'POST' && b?.role === 'ibma' && b.node === 'ALPHA' && (b.pid ?? 0) > 0;
    }),
  );
});

const CASES: [AnswerMode, RegExp][] = [
  ['truncated-lz4', /lz4/i],
  ['bad-json', /JSON/],
  ['schema', /key \/(nodes|version)/],
  ['proto', /__proto__|prototype|forbidden/i],
  ['other-node', /bundle of node SOMEONE_ELSE/],
  ['header-mismatch', /X-Ibp-Index/],
  ['cut-connection', /cut short|truncated/],
  ['oversized', /over the limit/],
  ['status-500', /HTTP 500|fake registry failure/],
];

for (const [mode, reason] of CASES) {
  t.test(`a ${mode} answer is rejected and the config stays`, async (t) => {
    const before = a.logLines().length;
    fake.setMode(mode);
    await waitFor(`two ${mode} answers`, () => (fake.hostile.get(mode) ?? 0) >= 2, 15_000);
    const lines = await waitFor('the rejection in the log', () => {
      const l = a.logLines().slice(before).filter((x) => /^ibms (answer rejected|unreachable)/.test(x.msg));
      return l.length > 0 && l.some((x) => reason.test(x.msg)) ? l : undefined;
    });
    t.ok(lines.some((x) => x.level === 'warn'), 'logged at warn level (event log) at least once');
    t.match(lines[0]!.msg, /keeping config version\[1\]/, 'the line says the current config is kept');
    t.equal(space.checkSwitch(), false, 'the index did not move');
    t.equal(space.generation, gen1);
    t.equal(space.kv('ALPHA', 'k'), 'v1', 'the reader still reads the last good config');
    const st = await a.ibma(['-s', 'status', '--json']);
    t.equal(st.code, 0, 'the agent is still running');
    const report = JSON.parse(st.stdout) as { held: { version: number }; ibms: { link: string } };
    t.equal(report.held.version, 1);
    t.equal(report.ibms.link, 'rejected', 'status shows the registry link as rejected');
    fake.setMode('good');
    await waitFor('the agent back on a good watch', () => fake.seen.slice(-3).some((s) => s.path === '/v1/agent/config'), 5000);
  });
}

t.test('good answers again: the agent catches up', async (t) => {
  fake.setMode('good');
  fake.setBundle(bundle(2, 'v2'));
  await waitFor('version 2 in the space', () => space.checkSwitch() && space.kv('ALPHA', 'k') === 'v2', 10_000);
  t.ok(space.generation > gen1);
  await waitFor('connected again in the log', () => a.logLines().some((l) => /^ibms connected/.test(l.msg)));
});

t.test('a new epoch with a lower version is a full resync, not ignored', async (t) => {
  fake.setBundle(bundle(1, 'restored', 'E2'));
  await waitFor('the restored registry\'s config in the space', () => {
    space.checkSwitch();
    return space.kv('ALPHA', 'k') === 'restored';
  }, 10_000);
  t.ok(a.logLines().some((l) => /registry epoch changed , from\[E1\] to\[E2\]/.test(l.msg)), 'logged the epoch change');
});

t.test('stop_cleanly leaves no segment of the home', async (t) => {
  space.close();
  const r = await a.ibma(['-a', 'stop_cleanly']);
  t.equal(r.code, 0, r.stderr);
  const { segmentsOfHome } = await import('../helpers/procs.js');
  t.same(await segmentsOfHome(a.home), [], 'ipcs -m: nothing of this home');
});

/**
 * A real ibms and two agents of different nodes on one machine (separate homes): a change made
 * with the ibms CLI + distribute_config reaches both config spaces within a second; a reader that
 * has not switched keeps reading the old, consistent data; an old segment disappears once its last
 * reader detached; ibms lists both agents as sessions; stop_cleanly leaves nothing in `ipcs -m`.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { homeKeyBase } from '../../lib/shm/keys.js';
import { loopbackIp, segmentsOfHome, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { makeIbms, type IbmsHome } from './ibms-home.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const ip = loopbackIp();
let reg: IbmsHome;
let ecif: AgentHome;
let core: AgentHome;
let ecifSpace: ConfigSpace;
let coreSpace: ConfigSpace;

t.before(async () => {
  const root = t.testdir();
  reg = await makeIbms(t, ip, root);
  reg.writeData({
    nodes: [
      { node: 'ECIF', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18001 }, { ip: '127.0.0.2', port: 18001 }], kvs: { hsm: 'model-a' } },
      { node: 'CORE', invalid: 0, hosts: [{ ip: '127.0.0.3', port: 10601 }], kvs: {} },
    ],
    apps: [{ app: 'ECHO', desc: 'echo', bin: 'echo.so', timeout: 5, timeout2: 0, invalid: 0, server_node: '' }],
    projects: [{ project: 'p1', server_nodes: ['ECIF'], client_nodes: ['CORE'], apps: ['ECHO'] }],
  });
  await reg.start();
  const [ecifCred, coreCred] = await Promise.all([reg.credential('ECIF'), reg.credential('CORE')]);
  ecif = await makeAgentHome(t, { root, node: 'ECIF', ibmsIp: ip, ibmsPort: reg.port, credential: ecifCred });
  core = await makeAgentHome(t, { root, node: 'CORE', ibmsIp: ip, ibmsPort: reg.port, credential: coreCred });
});

t.test('both agents start and publish their node with its related nodes', async (t) => {
  const [a, b] = await Promise.all([ecif.ibma(['-a', 'start']), core.ibma(['-a', 'start'])]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  ecifSpace = await openSpace(top, ecif.indexKey);
  coreSpace = await openSpace(top, core.indexKey);
  t.not(ecif.indexKey, core.indexKey, 'index keys derived from the homes differ');
  t.equal(ecifSpace.header().thisNode, 'ECIF');
  t.equal(coreSpace.header().thisNode, 'CORE');
  for (const s of [ecifSpace, coreSpace]) {
    t.same(s.nodes().map((n) => n.name).sort(), ['CORE', 'ECIF']);
    t.equal(s.kv('ECIF', 'hsm'), 'model-a');
    t.same(s.hosts('ECIF').map((h) => `${h.ip}:${h.port}`), ['127.0.0.1:18001', '127.0.0.2:18001']);
    t.equal(s.app('ECHO')?.timeout2, 7.5);
  }
  const shown = await core.ibma(['-s', 'nodes_kv', '--json']);
  t.same(JSON.parse(shown.stdout), [{ node: 'ECIF', key: 'hsm', value: 'model-a' }], 'ibma -s nodes_kv reads the space');
  t.equal((await core.ibma(['-s', 'this_node'])).stdout.trim(), 'CORE');
});

t.test('ibms -s sessions lists both agents', async (t) => {
  const rows = await waitFor('both agents in the sessions', async () => {
    const r = await reg.ibms(['-s', 'sessions', '--json']);
    const s = JSON.parse(r.stdout) as { role: string; node: string }[];
    return ['ECIF', 'CORE'].every((n) => s.some((x) => x.role === 'ibma' && x.node === n)) ? s : undefined;
  }, 15_000);
  t.ok(rows.length >= 2);
});

let oldKey = 0;
let stale: ConfigSpace | undefined;
t.teardown(() => stale?.close());

t.test('a change is visible within a second; a reader that has not switched keeps the old data', async (t) => {
  const st = (stale = ConfigSpace.openKey(core.indexKey));
  const oldGeneration = st.generation;
  const before = (await segmentsOfHome(core.home)).map((s) => s.key).filter((k) => k !== core.indexKey);
  t.equal(before.length, 1, 'one config segment before the change');
  oldKey = before[0]!;

  await reg.ibms(['-a', 'set_node_kv', '--node', 'ECIF', '--key', 'hsm', '--value', 'model-b']);
  await reg.ibms(['-a', 'add_node_host', '--node', 'CORE', '--ip', '127.0.0.4', '--port', '10601']);
  await reg.ibms(['-a', 'distribute_config']);
  const t0 = Date.now();
  await Promise.all(
    [coreSpace, ecifSpace].map((s) =>
      waitFor('the change in the space (deadline 1 s)', () => {
        s.checkSwitch();
        return s.kv('ECIF', 'hsm') === 'model-b' && s.hosts('CORE').length === 2;
      }, 1000, 10),
    ),
  );
  t.pass(`both spaces switched ${Date.now() - t0} ms after distribute_config returned`);

  // the reader that did not call checkSwitch: the whole old config, consistently
  t.equal(st.generation, oldGeneration, 'still on the old generation');
  t.equal(st.kv('ECIF', 'hsm'), 'model-a');
  t.same(st.hosts('CORE').map((h) => `${h.ip}:${h.port}`), ['127.0.0.3:10601']);
  t.equal(st.header().hostCount, 3);
  t.same(st.nodes().map((n) => n.name).sort(), ['CORE', 'ECIF']);
  t.ok(coreSpace.generation > oldGeneration);
  t.equal(coreSpace.header().hostCount, 4);
});

t.test('the old segment disappears after its last reader detaches', async (t) => {
  const middle = (await segmentsOfHome(core.home)).map((s) => s.key).filter((k) => k !== core.indexKey && k !== oldKey);
  t.equal(middle.length, 1, 'the current segment besides the old one');
  await reg.ibms(['-a', 'set_node_kv', '--node', 'ECIF', '--key', 'hsm', '--value', 'model-c']);
  await reg.ibms(['-a', 'distribute_config']);
  await waitFor('model-c in the space', () => {
    coreSpace.checkSwitch();
    return coreSpace.kv('ECIF', 'hsm') === 'model-c';
  }, 5000);
  // the middle segment lost its last reader when coreSpace switched: the agent removes it ...
  await waitFor('the middle segment removed', async () => !(await segmentsOfHome(core.home)).some((s) => s.key === middle[0]), 5000);
  // ... while the oldest one, still attached by the stale reader, stays
  t.ok((await segmentsOfHome(core.home)).some((s) => s.key === oldKey), 'the segment a reader still holds is kept');
  t.equal(stale!.kv('ECIF', 'hsm'), 'model-a', 'and that reader still reads it');
  t.equal(stale!.checkSwitch(), true, 'the stale reader switches');
  t.equal(stale!.kv('ECIF', 'hsm'), 'model-c');
  await waitFor('the old segment removed after its last reader detached', async () => !(await segmentsOfHome(core.home)).some((s) => s.key === oldKey), 5000);
  t.equal((await segmentsOfHome(core.home)).length, 2, 'left: the index and the current segment');
});

t.test('stop_cleanly: ipcs -m shows nothing of either home', async (t) => {
  for (const s of [stale, coreSpace, ecifSpace]) s?.close();
  const [a, b] = await Promise.all([ecif.ibma(['-a', 'stop_cleanly']), core.ibma(['-a', 'stop_cleanly'])]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  const ipcs = execFileSync('ipcs', ['-m'], { encoding: 'utf8' });
  for (const h of [ecif, core]) {
    const base = homeKeyBase(h.home);
    const ours = [...ipcs.matchAll(/^0x([0-9a-f]{8})\s/gm)].map((m) => parseInt(m[1]!, 16)).filter((k) => k >= base && k <= base + 255);
    t.same(ours, [], `no segment of ${h.node}'s key block in ipcs -m`);
  }
});

import t from 'tap';
import fc from 'fast-check';
import { Store, type ConfigData } from '../../ibms/store.js';
import { touchedByApp, touchedByBin, touchedByNode, touchedByProject } from '../../ibms/derive.js';
import { isIbpError } from '../../lib/errors.js';
import { SAMPLE } from './fixture.js';

const clone = (d: ConfigData): ConfigData => structuredClone(d);
const sorted = (s: Iterable<string>): string[] => [...s].sort();

t.test('related nodes and apps of a node follow its projects', async (t) => {
  const s = Store.fromData(clone(SAMPLE));
  t.same(sorted(s.related('CORE')), ['BATCH', 'ECIF'], 'CORE is a client of both projects');
  t.same(sorted(s.related('ECIF')), ['CORE']);
  t.same(sorted(s.related('CRM')), [], 'a node in no project has no related nodes');
  t.same(sorted(s.appsOfNode('CORE')), ['batch_run', 'ibp_test_echo', 'ibp_test_file']);
  t.same(sorted(s.appsOfNode('ECIF')), ['ibp_test_echo', 'ibp_test_file']);
});

t.test('derivation: node, app, project changes', async (t) => {
  const s = Store.fromData(clone(SAMPLE));
  t.same(sorted(touchedByNode(s, 'ECIF')), ['CORE', 'ECIF'], 'a node change touches the node and its related nodes');
  t.same(sorted(touchedByNode(s, 'CRM')), ['CRM'], 'a lone node touches itself');
  t.same(sorted(touchedByApp(s, 'ibp_test_echo')), ['CORE', 'ECIF'], 'an app change touches the nodes of its projects');
  t.same(sorted(touchedByApp(s, 'batch_run')), ['BATCH', 'CORE']);
  t.same(sorted(touchedByProject(s, 'batch')), ['BATCH', 'CORE']);
  t.same(touchedByBin(s, 'batch_run.so').apps, ['batch_run']);
  s.addApp({ app: 'orphan', desc: '', bin: 'orphan.so', timeout: 1, timeout2: 0, invalid: 0 });
  t.same(sorted(touchedByApp(s, 'orphan')), [], 'an app in no project touches nobody');
});

t.test('cross references are checked and a refused change changes nothing', async (t) => {
  const s = Store.fromData(clone(SAMPLE));
  const gen = s.generation;
  const refused = (fn: () => void, code: string, re: RegExp, what: string): void => {
    try {
      fn();
      t.fail(`${what}: not refused`);
    } catch (e) {
      t.ok(isIbpError(e), what);
      t.equal((e as { code: string }).code, code, what);
      t.match((e as Error).message, re, what);
    }
  };
  refused(() => s.addProject({ project: 'x', server_nodes: ['NOPE'], client_nodes: [], apps: [] }), 'IBP_ERR_REG_INVALID', /unknown node NOPE/, 'unknown node in a project');
  refused(() => s.addProject({ project: 'x', server_nodes: [], client_nodes: [], apps: ['nope'] }), 'IBP_ERR_REG_INVALID', /unknown app nope/, 'unknown app in a project');
  refused(() => s.addProject({ project: 'x', server_nodes: ['ECIF', 'ECIF'], client_nodes: [], apps: [] }), 'IBP_ERR_REG_INVALID', /twice/, 'a node twice');
  refused(() => s.addProject({ project: 'batch', server_nodes: [], client_nodes: [], apps: [] }), 'IBP_ERR_REG_EXISTS', /already exists/, 'duplicate project');
  refused(() => s.addHost('CORE', { ip: '127.0.0.1', port: 18001 }), 'IBP_ERR_REG_HOST_TAKEN', /node ECIF/, 'a host of another node');
  refused(() => s.addHost('ECIF', { ip: '127.0.0.1', port: 18001 }), 'IBP_ERR_REG_HOST_TAKEN', /node ECIF/, 'duplicate host');
  refused(() => s.removeHost('ECIF', '127.0.0.9', 1), 'IBP_ERR_REG_NOT_FOUND', /host 127\.0\.0\.9:1 of node ECIF/, 'unknown host');
  refused(() => s.removeNode('ECIF'), 'IBP_ERR_REG_IN_USE', /project echo_project/, 'a node still in a project');
  refused(() => s.addApp({ app: 'a2', desc: '', bin: 'a.so', timeout: 1, timeout2: 0, invalid: 0, server_node: 'NOPE' }), 'IBP_ERR_REG_INVALID', /server_node NOPE/, 'unknown server node');
  refused(() => s.setProject('batch', { apps: ['batch_run', 'nope'] }), 'IBP_ERR_REG_INVALID', /unknown app nope/, 'set_project with an unknown app');
  refused(() => s.addKv('ECIF', 'hsm', 'x'), 'IBP_ERR_REG_EXISTS', /node_kv ECIF\/hsm/, 'duplicate kv');
  refused(() => s.removeKv('ECIF', 'nope'), 'IBP_ERR_REG_NOT_FOUND', /node_kv ECIF\/nope/, 'unknown kv');
  refused(() => s.setNode('NOPE', { invalid: 1 }), 'IBP_ERR_REG_NOT_FOUND', /node NOPE not found/, 'unknown node');
  t.equal(s.generation, gen, 'no refused change bumped the generation');
  t.same(s.toData(), SAMPLE, 'the data is as it was');

  s.setProject('batch', { client_nodes: [] });
  t.same(sorted(s.related('BATCH')), [], 'set_project re-indexes membership');
  s.removeProject('batch');
  refused(() => s.removeNode('BATCH'), 'IBP_ERR_REG_IN_USE', /app \(as server_node\) batch_run/, 'a node still an app\'s server node');
});

t.test('removing an app drops it from its projects', async (t) => {
  const s = Store.fromData(clone(SAMPLE));
  t.same(s.removeApp('ibp_test_echo'), ['echo_project']);
  t.same(s.project('echo_project').apps, ['ibp_test_file']);
  t.same(sorted(s.appsOfNode('ECIF')), ['ibp_test_file']);
  t.equal(s.appsOfBin('ibp_test_echo.so').length, 0);
});

t.test('package entitlement: server nodes of projects holding the app, or its server_node', async (t) => {
  const s = Store.fromData(clone(SAMPLE));
  t.ok(s.entitledToBin('ECIF', 'ibp_test_echo.so'), 'server node of the project');
  t.notOk(s.entitledToBin('CORE', 'ibp_test_echo.so'), 'a client node is not');
  t.notOk(s.entitledToBin('CRM', 'ibp_test_echo.so'), 'an unrelated node is not');
  t.ok(s.entitledToBin('BATCH', 'batch_run.so'));
  s.setApp('ibp_test_file', { server_node: 'CRM' });
  t.ok(s.entitledToBin('CRM', 'ibp_test_file.so'), "the app's server_node is");
  t.notOk(s.entitledToBin('ECIF', 'nope.so'), 'an unknown package is nobody\'s');
});

t.test('loading names the file and the key of a broken reference', async (t) => {
  const bad = clone(SAMPLE);
  bad.projects[1]!.client_nodes = ['CORE', 'GHOST'];
  t.throws(() => Store.fromData(bad, { nodes: 'n.conf', apps: 'a.conf', projects: 'p.conf' }), { code: 'IBP_ERR_CFG_INVALID', message: /config file p\.conf: key \/projects\/1\/client_nodes\/1 names node GHOST, which is not in n\.conf/ });
  const dupHost = clone(SAMPLE);
  dupHost.nodes[1]!.hosts.push({ ip: '127.0.0.1', port: 18001 });
  t.throws(() => Store.fromData(dupHost, { nodes: 'n.conf', apps: 'a.conf', projects: 'p.conf' }), { message: /key \/nodes\/1\/hosts\/1 repeats host 127\.0\.0\.1:18001 \(already a host of node ECIF\)/ });
  const dupNode = clone(SAMPLE);
  dupNode.nodes.push({ ...dupNode.nodes[0]!, hosts: [] });
  t.throws(() => Store.fromData(dupNode), { message: /\/nodes\/4\/node repeats node ECIF/ });
  const badServer = clone(SAMPLE);
  badServer.apps[0]!.server_node = 'GHOST';
  t.throws(() => Store.fromData(badServer), { message: /\/apps\/0\/server_node names node GHOST/ });
});

// Property: related() is symmetric and derived sets match a brute-force definition.
t.test('property: related is symmetric and matches the definition', async (t) => {
  const names = ['A', 'B', 'C', 'D', 'E', 'F'];
  const arbProject = fc.record({
    server: fc.subarray(names),
    client: fc.subarray(names),
  });
  fc.assert(
    fc.property(fc.array(arbProject, { maxLength: 5 }), (projects) => {
      const data: ConfigData = {
        nodes: names.map((node) => ({ node, invalid: 0, hosts: [], kvs: {} })),
        apps: [],
        projects: projects.map((p, i) => ({ project: `P${i}`, server_nodes: p.server, client_nodes: p.client, apps: [] })),
      };
      const s = Store.fromData(data);
      for (const a of names) {
        const expect = new Set<string>();
        for (const p of projects) if (p.server.includes(a) || p.client.includes(a)) for (const n of [...p.server, ...p.client]) if (n !== a) expect.add(n);
        if (sorted(s.related(a)).join() !== sorted(expect).join()) return false;
        for (const b of s.related(a)) if (!s.related(b).has(a)) return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass('200 random project sets');
});

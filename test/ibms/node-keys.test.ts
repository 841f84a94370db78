/**
 * Node keys in the registry (ibms/node-keys.ts): a pair per node (also for nodes of a registry from
 * before node keys, when first needed), private keys only to the node's own credential, rotation times from
 * security.*, the rotation distributed to exactly the nodes holding the node, pairs past their
 * disable time dropped, a removed node's file deleted.
 */
import fs from 'node:fs';
import t from 'tap';
import { nodeKeyFromWire, nodePrivateKeyFromWire, type NodeKeyWire, type NodePrivateKeyWire } from '../../lib/node-keys.js';
import { nodeKeysFile, NodeKeys } from '../../ibms/node-keys.js';
import { Home } from '../../lib/home.js';
import { makeFixture, SAMPLE } from './fixture.js';

const data = () => {
  const d = structuredClone(SAMPLE);
  d.nodes.push({ node: 'LONE', invalid: 0, hosts: [], kvs: {} });
  return d;
};

t.test('a pair per node, created when first needed and by add_node; files 0600; removed with the node', async (t) => {
  const f = await makeFixture(t, { data: data() });
  const keys = (await f.call('GET', '/v1/node_keys')).json.keys as NodeKeyWire[];
  t.same(keys.map((k) => k.node).sort(), [...data().nodes.map((n) => n.node)].sort(), 'one pair per node');
  for (const k of keys) {
    t.match(k, { enable_at: 0, disable_at: 0 }, `${k.node}: enabled at once, never disabled`);
    t.equal(nodeKeyFromWire(k).kcv, k.kcv, `${k.node}: the KCV is the one of its keys`);
    t.notOk('sign_private' in k, 'no private half in the admin view');
    const file = f.home.keys(nodeKeysFile(k.node));
    t.equal(fs.statSync(file).mode & 0o777, 0o600, `${file} is 0600`);
  }
  t.equal(new Set(keys.map((k) => k.kcv)).size, keys.length, 'every pair differs');

  t.equal((await f.call('POST', '/v1/nodes', { node: 'NEW1' })).status, 201);
  const fresh = (await f.call('GET', '/v1/node_keys?node=NEW1')).json.keys as NodeKeyWire[];
  t.equal(fresh.length, 1, 'add_node creates its pair');
  t.equal((await f.call('DELETE', '/v1/nodes/NEW1')).status, 200);
  t.notOk(fs.existsSync(f.home.keys(nodeKeysFile('NEW1'))), 'remove_node deletes its key file');

  // a restart keeps the pairs
  const again = new NodeKeys(f.home);
  again.ensureNode('ECIF');
  t.equal(again.publicKeys('ECIF')[0]!.kcv, keys.find((k) => k.node === 'ECIF')!.kcv, 'the pair is read back, not re-created');
  fs.chmodSync(f.home.keys(nodeKeysFile('CORE')), 0o644);
  t.throws(() => new NodeKeys(f.home).ensureNode('CORE'), { code: 'IBP_ERR_NODE_KEY_FILE', message: /chmod 600/ }, 'a key file others can read is refused');
});

t.test('bundles carry the public pairs of the nodes they hold, never a private half', async (t) => {
  const f = await makeFixture(t, { data: data() });
  const b = f.reg.bundle('ECIF');
  t.same(b.node_keys!.map((k) => k.node).sort(), b.nodes.map((n) => n.node).sort(), 'a pair of each node of the bundle');
  t.notOk(JSON.stringify(b).includes('_private'), 'no private half');
  t.same(f.reg.bundle('LONE').node_keys!.map((k) => k.node), ['LONE'], 'a node without projects holds only its own');
});

t.test('private keys go only to the node itself', async (t) => {
  const f = await makeFixture(t, { data: data() });
  const cred = async (n: string) => (await f.call('GET', `/v1/nodes/${n}/credential`)).json.credential as string;
  const get = (node: string, token?: string) => f.app.inject({ method: 'GET', url: `/v1/agent/node_keys/${node}`, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const ecif = await cred('ECIF');
  const own = await get('ECIF', ecif);
  t.equal(own.statusCode, 200);
  const got = own.json() as { node: string; keys: NodePrivateKeyWire[] };
  t.equal(got.keys.length, 1);
  t.equal(nodePrivateKeyFromWire(got.keys[0]!).kcv, f.reg.nodeKeys.publicKeys('ECIF')[0]!.kcv, 'the private pair of the published public one');
  t.equal((await get('CORE', ecif)).statusCode, 403, "another node's credential: 403");
  t.equal((await get('CORE', ecif)).json().code, 'IBP_ERR_REG_FORBIDDEN');
  t.equal((await get('ECIF', f.admin)).statusCode, 403, 'the admin credential: 403 too');
  const ro = fs.readFileSync(f.home.keys('admin-ro.credential'), 'utf8').trim();
  t.equal((await get('ECIF', ro)).statusCode, 403, 'the read-only admin: 403');
  t.equal((await get('ECIF')).statusCode, 401, 'no credential: 401');
  t.equal((await get('ECIF', 'f'.repeat(64))).statusCode, 401, 'a wrong credential: 401');
});

t.test('rotation: times from security.*, old pairs disabled, distributed to the nodes holding the node', async (t) => {
  const f = await makeFixture(t, { data: data(), conf: (c) => void (c.security = { new_key_enable_elapse: 7, old_key_disable_elapse: 11 }) });
  f.reg.distribute();
  const before = f.reg.versions.version('ECIF');
  const first = f.reg.nodeKeys.publicKeys('CORE')[0]!;
  const t0 = Date.now();
  const r = await f.call('POST', '/v1/nodes/CORE/keys/rotate');
  const t1 = Date.now();
  t.equal(r.status, 200);
  t.ok(r.json.enable_at >= t0 + 7000 && r.json.enable_at <= t1 + 7000, 'enable_at = now + new_key_enable_elapse');
  t.same(r.json.old, [{ kcv: first.kcv, disable_at: r.json.enable_at + 4000 }], 'the old pair: disable_at = now + old_key_disable_elapse');
  t.same((r.json.distributed as { node: string }[]).map((d) => d.node).sort(), ['BATCH', 'CORE', 'ECIF'], 'CORE and its related nodes (sharing a project) are distributed at once');
  t.ok(f.reg.versions.version('ECIF') > before);
  t.same((await f.call('GET', '/v1/nodes_changed')).json.nodes, [], 'nothing left pending');
  const core = (await f.call('GET', '/v1/node_keys?node=CORE')).json.keys as NodeKeyWire[];
  t.same(core.map((k) => k.kcv), [first.kcv, r.json.kcv], 'both pairs listed');
  t.same(f.reg.bundle('ECIF').node_keys!.filter((k) => k.node === 'CORE').map((k) => [k.kcv, k.enable_at, k.disable_at]), core.map((k) => [k.kcv, k.enable_at, k.disable_at]), "ECIF's bundle has both of CORE's pairs");

  const lone = await f.call('POST', '/v1/nodes/LONE/keys/rotate');
  t.same((lone.json.distributed as { node: string }[]).map((d) => d.node), ['LONE'], 'a node sharing no project: only itself');
  t.equal((await f.call('POST', '/v1/nodes/GHOST/keys/rotate')).status, 404);

  // pairs past their disable time are dropped at the next rotation
  const keys = new NodeKeys(f.home);
  const rot1 = keys.rotate('LONE', 0, 10, t1 + 20_000);
  t.same(rot1.dropped, [lone.json.old[0].kcv], 'the pair disabled by the earlier rotation is dropped');
  t.equal(keys.publicKeys('LONE').length, 2);
  const file = JSON.parse(fs.readFileSync(new Home(f.home.root).keys(nodeKeysFile('LONE')), 'utf8')) as { keys: unknown[] };
  t.equal(file.keys.length, 2, 'the file holds what is kept');
});

t.test('security: the old pair must outlive the enable time', async (t) => {
  await t.rejects(makeFixture(t, { conf: (c) => void (c.security = { new_key_enable_elapse: 60, old_key_disable_elapse: 30 }) }), { code: 'IBP_ERR_CFG_INVALID' });
});

t.test('ibms -a init on a home from before node keys creates the pairs of its nodes', async (t) => {
  const home = new Home(t.testdir());
  const { initHome } = await import('../../ibms/init.js');
  initHome(home);
  t.notOk(fs.existsSync(home.keys(nodeKeysFile('ECIF'))), 'a new home has no nodes, so no node keys');
  const { writeData } = await import('./fixture.js');
  writeData(home, data());
  const lines = initHome(home);
  for (const n of data().nodes.map((x) => x.node)) {
    t.ok(lines.includes(`${home.keys(nodeKeysFile(n))} created (node key pair of ${n}, mode 0600)`), `init creates the pair of ${n}`);
    t.equal(fs.statSync(home.keys(nodeKeysFile(n))).mode & 0o777, 0o600);
  }
  t.ok(initHome(home).every((l) => l.startsWith('WARN : ') && l.endsWith(' exist !')), 'a second init only warns');
});

/**
 * What an agent receives is what was distributed (issue 10): an edit not yet distributed is
 * invisible to every agent, however fresh (no index, no epoch), until distribute_config or
 * download_config publishes it under a higher version. Through inject() with node credentials.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import { lz4Decompress } from '../../lib/codec/lz4.js';
import { makeFixture, SAMPLE, type Fixture } from './fixture.js';

async function credentialOf(f: Fixture, node: string): Promise<string> {
  return (await f.call('GET', `/v1/nodes/${node}/credential`)).json.credential;
}

/** A freshly started agent: no index, no epoch. */
async function fresh(f: Fixture, cred: string, node: string, query = '') {
  const r = await f.app.inject({ method: 'GET', url: `/v1/agent/config?node=${node}${query}`, headers: { authorization: `Bearer ${cred}` } });
  let body = r.rawPayload;
  if (r.headers['content-encoding'] === 'lz4') body = lz4Decompress(body, 1 << 26);
  return { status: r.statusCode, bundle: (r.statusCode === 200 ? JSON.parse(body.toString()) : undefined) as NodeBundle, json: () => JSON.parse(body.toString()) };
}

const kvsOf = (b: NodeBundle, node: string) => b.nodes.find((n) => n.node === node)?.kvs;
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

t.test('an undistributed kv edit is invisible to a fresh agent until distribute_config, then visible with a higher version', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const ecif = await credentialOf(f, 'ECIF');
  const core = await credentialOf(f, 'CORE');
  const before = await fresh(f, ecif, 'ECIF');
  t.equal(before.status, 200);
  const v1 = before.bundle.version;
  t.same(kvsOf(before.bundle, 'ECIF'), { hsm: 'model-a' });

  t.equal((await f.call('PUT', '/v1/nodes/ECIF/kvs/hsm', { value: 'model-b' })).status, 200);
  t.equal((await f.call('POST', '/v1/nodes/ECIF/kvs', { key: 'zone', value: 'z9' })).status, 201);
  t.same((await f.call('GET', '/v1/nodes_changed')).json.nodes.sort(), ['CORE', 'ECIF'], 'both edits are pending');

  const pending = await fresh(f, ecif, 'ECIF');
  t.equal(pending.bundle.version, v1, 'same version');
  t.same(kvsOf(pending.bundle, 'ECIF'), { hsm: 'model-a' }, 'a fresh agent still gets what was distributed');
  const relatedPending = await fresh(f, core, 'CORE');
  t.same(kvsOf(relatedPending.bundle, 'ECIF'), { hsm: 'model-a' }, 'a related node does not see the pending edit either');
  t.same((await f.call('GET', '/v1/nodes_kv?node=ECIF')).json.kvs.map((k: { key: string; value: string }) => `${k.key}=${k.value}`).sort(), ['hsm=model-b', 'zone=z9'], 'the admin view shows the edit');

  const dist = await f.call('POST', '/v1/config/distribute');
  t.equal(dist.status, 200);
  const after = await fresh(f, ecif, 'ECIF');
  t.ok(after.bundle.version > v1, `version went up (${v1} → ${after.bundle.version})`);
  t.same(kvsOf(after.bundle, 'ECIF'), { hsm: 'model-b', zone: 'z9' }, 'the distributed edit is visible');
  t.same(kvsOf((await fresh(f, core, 'CORE')).bundle, 'ECIF'), { hsm: 'model-b', zone: 'z9' });

  // an edit after that is pending again; download_config publishes one node only
  t.equal((await f.call('DELETE', '/v1/nodes/ECIF/kvs/zone')).status, 200);
  t.same(kvsOf((await fresh(f, ecif, 'ECIF')).bundle, 'ECIF'), { hsm: 'model-b', zone: 'z9' });
  const dl = await f.call('POST', '/v1/config/download', { node: 'ECIF' });
  t.equal(dl.status, 200);
  const ecifNow = (await fresh(f, ecif, 'ECIF')).bundle;
  t.ok(ecifNow.version > after.bundle.version, 'download_config gives a higher version');
  t.same(kvsOf(ecifNow, 'ECIF'), { hsm: 'model-b' });
  const coreNow = (await fresh(f, core, 'CORE')).bundle;
  t.same(kvsOf(coreNow, 'ECIF'), { hsm: 'model-b', zone: 'z9' }, 'CORE, not downloaded, keeps its distributed version');
  t.same((await f.call('GET', '/v1/nodes_changed')).json.nodes, ['CORE']);
});

t.test('project, app and package changes are invisible until distributed', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const so1 = Buffer.from('package one');
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), so1);
  const core = await credentialOf(f, 'CORE');
  const b1 = (await fresh(f, core, 'CORE')).bundle;
  t.equal(b1.apps.find((a) => a.app === 'ibp_test_echo')?.sha256, sha(so1));

  // the .so replaced on disk, then update_app: both pending
  const so2 = Buffer.from('package two, longer');
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), so2);
  t.equal((await fresh(f, core, 'CORE')).bundle.apps.find((a) => a.app === 'ibp_test_echo')?.sha256, sha(so1), 'a file replaced on disk is not published');
  t.equal((await f.call('POST', '/v1/apps/ibp_test_echo/update')).status, 200);
  t.equal((await f.call('PATCH', '/v1/apps/ibp_test_echo', { timeout: 77 })).status, 200);
  t.equal((await f.call('PATCH', '/v1/projects/echo_project', { apps: ['ibp_test_echo'] })).status, 200);
  const pending = (await fresh(f, core, 'CORE')).bundle;
  t.equal(pending.version, b1.version);
  const echo = pending.apps.find((a) => a.app === 'ibp_test_echo')!;
  t.equal(echo.sha256, sha(so1), 'update_app is pending');
  t.equal(echo.timeout, 50, 'set_app is pending');
  t.ok(pending.apps.some((a) => a.app === 'ibp_test_file'), 'set_project is pending');

  await f.call('POST', '/v1/config/distribute');
  const b2 = (await fresh(f, core, 'CORE')).bundle;
  t.ok(b2.version > b1.version);
  const echo2 = b2.apps.find((a) => a.app === 'ibp_test_echo')!;
  t.equal(echo2.sha256, sha(so2));
  t.equal(echo2.timeout, 77);
  t.notOk(b2.apps.some((a) => a.app === 'ibp_test_file'));
});

t.test('a node added but never distributed has no config; a held watch is answered by the distribution', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  t.equal((await f.call('POST', '/v1/nodes', { node: 'NEW', kvs: { a: '1' } })).status, 201);
  const cred = await credentialOf(f, 'NEW');
  const none = await fresh(f, cred, 'NEW');
  t.equal(none.status, 404);
  t.equal(none.json().code, 'IBP_ERR_REG_NOT_DISTRIBUTED');
  const held = fresh(f, cred, 'NEW', '&index=0&epoch=&wait=30');
  let answered = false;
  void held.then(() => (answered = true));
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(answered, 'the watch is held while nothing is published');
  await f.call('POST', '/v1/config/distribute');
  const got = await held;
  t.equal(got.status, 200);
  t.ok(got.bundle.version > 0);
  t.same(kvsOf(got.bundle, 'NEW'), { a: '1' });
});

t.test('save_config names the saved changes not distributed yet', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  await f.call('PUT', '/v1/nodes/CRM/kvs/k', { value: 'v' });
  const r = await f.call('POST', '/v1/config/save');
  t.equal(r.status, 200);
  t.same(r.json.undistributed, ['CRM']);
  await f.call('POST', '/v1/config/distribute');
  t.same((await f.call('POST', '/v1/config/save')).json.undistributed, []);
});

t.test('update_app touches every app sharing the package; all of them see it only once distributed', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  // batch_run now shares the echo package; BATCH serves it, CORE is a client of both projects
  t.equal((await f.call('PATCH', '/v1/apps/batch_run', { bin: 'ibp_test_echo.so' })).status, 200);
  await f.call('POST', '/v1/config/distribute');
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), Buffer.from('v1'));
  t.equal((await f.call('POST', '/v1/apps/ibp_test_echo/update')).status, 200);
  await f.call('POST', '/v1/config/distribute');
  const batch = await credentialOf(f, 'BATCH');
  t.equal((await fresh(f, batch, 'BATCH')).bundle.apps.find((a) => a.app === 'batch_run')?.sha256, sha(Buffer.from('v1')));
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), Buffer.from('v2'));
  const r = await f.call('POST', '/v1/apps/ibp_test_echo/update');
  t.ok(r.json.touched.includes('BATCH'), 'BATCH, which serves only batch_run, is touched too');
  t.equal((await fresh(f, batch, 'BATCH')).bundle.apps.find((a) => a.app === 'batch_run')?.sha256, sha(Buffer.from('v1')), 'pending');
  await f.call('POST', '/v1/config/distribute');
  t.equal((await fresh(f, batch, 'BATCH')).bundle.apps.find((a) => a.app === 'batch_run')?.sha256, sha(Buffer.from('v2')), 'published');
});

/** The agent endpoints (ARCHITECTURE §4.1) through inject(): bundles, blocking watches, packages, heartbeats. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import t from 'tap';
import { NodeBundle } from '../../lib/config/model.js';
import { validate } from '../../lib/config/load.js';
import { lz4Decompress } from '../../lib/codec/lz4.js';
import { makeFixture, SAMPLE, type Fixture } from './fixture.js';

async function credentialOf(f: Fixture, node: string): Promise<string> {
  return (await f.call('GET', `/v1/nodes/${node}/credential`)).json.credential;
}

async function agentGet(f: Fixture, cred: string, url: string, extra: Record<string, string> = {}) {
  const r = await f.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${cred}`, ...extra } });
  let body = r.rawPayload;
  if (r.headers['content-encoding'] === 'lz4') body = lz4Decompress(body, 1 << 26);
  return { r, body, json: () => JSON.parse(body.toString()) };
}

t.test('the bundle of a node: itself, related nodes, apps of its projects with package identity', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const so = Buffer.from('not really an ELF, but bytes with a hash');
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), so);
  const cred = await credentialOf(f, 'CORE');
  const { r, json } = await agentGet(f, cred, '/v1/agent/config?node=CORE');
  t.equal(r.statusCode, 200);
  const b = validate(NodeBundle, json(), 'bundle');
  t.equal(r.headers['x-ibp-index'], String(b.version));
  t.equal(r.headers['x-ibp-epoch'], b.epoch);
  t.equal(b.this_node, 'CORE');
  t.same(b.nodes.map((n) => n.node), ['CORE', 'ECIF', 'BATCH'], 'the node first, then its related nodes');
  t.same(b.nodes[1]!.kvs, { hsm: 'model-a' }, 'related nodes come with their kvs');
  t.same(b.nodes[1]!.hosts.length, 2, 'and their hosts');
  t.same(b.apps.map((a) => a.app).sort(), ['batch_run', 'ibp_test_echo', 'ibp_test_file']);
  const echo = b.apps.find((a) => a.app === 'ibp_test_echo')!;
  t.equal(echo.sha256, crypto.createHash('sha256').update(so).digest('hex'));
  t.equal(echo.size, so.length);
  t.match(b.apps.find((a) => a.app === 'batch_run'), { sha256: '', size: 0 }, 'no package: empty identity');

  const crm = await credentialOf(f, 'CRM');
  const lone = (await agentGet(f, crm, '/v1/agent/config?node=CRM')).json();
  t.same(lone.nodes.map((n: { node: string }) => n.node), ['CRM']);
  t.same(lone.apps, []);

  const denied = await agentGet(f, crm, '/v1/agent/config?node=CORE');
  t.equal(denied.r.statusCode, 403, "a node cannot read another node's bundle");
  t.equal((await agentGet(f, 'wrong', '/v1/agent/config?node=CORE')).r.statusCode, 401);
  t.equal((await agentGet(f, f.admin, '/v1/agent/config?node=CORE')).r.statusCode, 200, 'the admin can read any');
  t.equal((await agentGet(f, cred, '/v1/agent/config?node=CORE&wait=abc')).r.statusCode, 400, 'a bad wait is 400');
  t.equal((await agentGet(f, f.admin, '/v1/agent/config?node=GHOST')).r.statusCode, 404);
  const lz = await agentGet(f, cred, '/v1/agent/config?node=CORE', { 'accept-encoding': 'lz4' });
  t.equal(lz.r.headers['content-encoding'], 'lz4', 'bundles above min_compress_size go out in lz4');
  t.same(lz.json(), json());
});

t.test('blocking watch: at once on a new version, another epoch or an index ahead; else held until distribution or wait', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const cred = await credentialOf(f, 'ECIF');
  const first = await agentGet(f, cred, '/v1/agent/config?node=ECIF&index=0&epoch=&wait=30');
  const epoch = String(first.r.headers['x-ibp-epoch']);
  const v1 = Number(first.r.headers['x-ibp-index']);
  t.equal(v1, 1, 'answered at once: the agent had nothing');

  let t0 = Date.now();
  const ahead = await agentGet(f, cred, `/v1/agent/config?node=ECIF&index=${v1 + 1000}&epoch=${epoch}&wait=30`);
  t.ok(Date.now() - t0 < 5000, 'an index ahead of the registry is answered at once (restored registry: no hang)');
  t.equal(Number(ahead.r.headers['x-ibp-index']), v1, 'with the current version');
  const other = await agentGet(f, cred, `/v1/agent/config?node=ECIF&index=${v1}&epoch=old-epoch&wait=30`);
  t.equal(other.r.headers['x-ibp-epoch'], epoch, 'another epoch is answered at once with the current one');

  t0 = Date.now();
  const timedOut = await agentGet(f, cred, `/v1/agent/config?node=ECIF&index=${v1}&epoch=${epoch}&wait=0.3`);
  t.ok(Date.now() - t0 >= 250, 'the current version is held for the wait');
  t.equal(Number(timedOut.r.headers['x-ibp-index']), v1, 'then answered with the same version');

  // a held watch, a change, and the distribution that releases it
  let released = false;
  const held = agentGet(f, cred, `/v1/agent/config?node=ECIF&index=${v1}&epoch=${epoch}&wait=30`).then((x) => {
    released = true;
    return x;
  });
  await new Promise((r) => setTimeout(r, 100));
  t.equal(f.reg.versions.waiting('ECIF'), 1, 'the watch is held');
  const sessions = (await f.call('GET', '/v1/sessions')).json.sessions;
  t.match(sessions, [{ role: 'ibma', node: 'ECIF', watches: 1 }], 'a held watch shows as a live session');
  await f.call('PUT', '/v1/nodes/ECIF/kvs/color', { value: 'blue' });
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(released, 'a change alone does not release it');
  await f.call('POST', '/v1/config/distribute');
  const got = await held;
  const v2 = Number(got.r.headers['x-ibp-index']);
  t.ok(v2 > v1, 'distribution releases it with a newer version');
  t.equal(got.json().nodes[0].kvs.color, 'blue');

  // download_config forces one node
  const held2 = agentGet(f, cred, `/v1/agent/config?node=ECIF&index=${v2}&epoch=${epoch}&wait=30`);
  await new Promise((r) => setTimeout(r, 50));
  const dl = await f.call('POST', '/v1/config/download', { node: 'ECIF' });
  t.equal(Number((await held2).r.headers['x-ibp-index']), dl.json.version, 'download_config releases the watch with its version');
});

t.test('stopping answers held watches at once', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const cred = await credentialOf(f, 'ECIF');
  const epoch = f.reg.versions.epoch;
  const held = agentGet(f, cred, `/v1/agent/config?node=ECIF&index=1&epoch=${epoch}&wait=60`);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(f.reg.versions.waiting(), 1);
  const t0 = Date.now();
  const closing = f.app.close();
  const r = await held;
  await closing;
  t.ok(Date.now() - t0 < 5000, 'close did not wait for the watch to time out');
  t.equal(r.r.statusCode, 200, 'the watch got its bundle');
});

t.test('packages: only entitled nodes; bytes with their sha256', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const bytes = crypto.randomBytes(3000);
  fs.writeFileSync(f.home.so('ibp_test_echo.so'), bytes);
  const ecif = await credentialOf(f, 'ECIF');
  const core = await credentialOf(f, 'CORE');
  const ok = await agentGet(f, ecif, '/v1/agent/packages/ibp_test_echo.so');
  t.equal(ok.r.statusCode, 200);
  t.ok(ok.body.equals(bytes), 'the bytes');
  t.equal(ok.r.headers['x-ibp-sha256'], crypto.createHash('sha256').update(bytes).digest('hex'));
  t.equal((await agentGet(f, core, '/v1/agent/packages/ibp_test_echo.so')).r.statusCode, 403, 'a client node is not entitled');
  t.equal((await agentGet(f, ecif, '/v1/agent/packages/batch_run.so')).r.statusCode, 403, 'another project\'s package is refused');
  const batch = await credentialOf(f, 'BATCH');
  const missing = await agentGet(f, batch, '/v1/agent/packages/batch_run.so');
  t.equal(missing.r.statusCode, 404, 'entitled but absent in so/');
  t.equal(missing.json().code, 'IBP_ERR_REG_NO_PACKAGE');
  for (const hostile of ['..%2F..%2Fkeys%2Fadmin.credential', '..%2Fetc%2Fibms.conf', 'x%00.so', 'admin.credential']) {
    const r = await agentGet(f, f.admin, `/v1/agent/packages/${hostile}`);
    t.equal(r.r.statusCode >= 400 && r.r.statusCode < 500, true, `hostile name ${hostile} refused (${r.r.statusCode})`);
    t.notOk(r.body.includes(f.admin), 'no secret leaked');
  }
});

t.test("a bundle's package_bins are exactly the bins the package route serves that node", async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  for (const bin of ['ibp_test_echo.so', 'ibp_test_file.so', 'batch_run.so']) fs.writeFileSync(f.home.so(bin), `bytes of ${bin}`);
  const expected: Record<string, string[]> = { CORE: [], ECIF: ['ibp_test_echo.so', 'ibp_test_file.so'], BATCH: ['batch_run.so'], CRM: [] };
  for (const [node, bins] of Object.entries(expected)) {
    const cred = await credentialOf(f, node);
    const b = validate(NodeBundle, (await agentGet(f, cred, `/v1/agent/config?node=${node}`)).json(), 'bundle');
    t.same([...(b.package_bins ?? [])].sort(), bins, `${node}: package_bins ${bins.join(' ') || '(none)'}`);
    for (const bin of new Set(b.apps.map((a) => a.bin))) {
      const status = (await agentGet(f, cred, `/v1/agent/packages/${bin}`)).r.statusCode;
      t.equal(status, (b.package_bins ?? []).includes(bin) ? 200 : 403, `${node} ${bin}: the route agrees with the bundle (${status})`);
    }
  }
});

t.test('heartbeats make sessions; a node can only beat for itself', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const ecif = await credentialOf(f, 'ECIF');
  const beat = (cred: string, body: unknown) => f.app.inject({ method: 'POST', url: '/v1/agent/heartbeat', headers: { authorization: `Bearer ${cred}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  let r = await beat(ecif, { role: 'ibas', node: 'ECIF', ip: '127.0.0.1', port: 18001, pid: 1234, load: 2 });
  t.equal(r.statusCode, 200);
  t.match(r.json(), { ok: true, expire_seconds: 30, epoch: f.reg.versions.epoch });
  r = await beat(ecif, { role: 'ibma', node: 'ECIF', pid: 1235 });
  t.equal(r.statusCode, 200);
  r = await beat(ecif, { role: 'ibas', node: 'CORE', pid: 1 });
  t.equal(r.statusCode, 403, 'beating for another node is refused');
  r = await beat(ecif, { role: 'nginx', node: 'ECIF', pid: 1 });
  t.equal(r.statusCode, 400, 'an unknown role is refused');
  t.match(r.json().message, /key \/role must be ibma or ibas/);
  const s = (await f.call('GET', '/v1/sessions')).json.sessions;
  t.equal(s.length, 2);
  t.match(s[0], { role: 'ibas', node: 'ECIF', ip: '127.0.0.1', port: 18001, pid: 1234, load: 2 });
  t.match(s[1], { role: 'ibma', node: 'ECIF', pid: 1235 });
});

t.test('a removed node: its credential stops working and its watch is released', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const crm = await credentialOf(f, 'CRM');
  const held = agentGet(f, crm, `/v1/agent/config?node=CRM&index=1&epoch=${f.reg.versions.epoch}&wait=30`);
  await new Promise((r) => setTimeout(r, 50));
  t.equal((await f.call('DELETE', '/v1/nodes/CRM')).status, 200);
  const r = await held;
  t.equal(r.r.statusCode, 404, 'the held watch learns the node is gone');
  t.equal((await agentGet(f, crm, '/v1/agent/config?node=CRM')).r.statusCode, 401, 'its credential no longer works');
  t.notOk(fs.existsSync(f.home.keys('node_CRM.credential')), 'its credential file is removed');
});

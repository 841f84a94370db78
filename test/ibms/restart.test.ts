/** Restarting the real daemon from saved files and from .bin images; agents see a new epoch. */
import fs from 'node:fs';
import t from 'tap';
import { makeDaemon } from './daemon-fixture.js';
import { SAMPLE } from './fixture.js';

t.test('restart from saved files, then from .bin images; an agent resyncs on the new epoch', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE) });
  const status = async () => JSON.parse(await d.ok('-s', 'status', '--json')).worker;
  const cred = (await d.ok('-s', 'node_credential', '--node', 'CORE')).trim();
  const agent = (q: string) => d.http('GET', `/v1/agent/config?node=CORE&${q}`, { headers: { authorization: `Bearer ${cred}` }, timeoutMs: 60_000 });

  await d.ok('-a', 'add_node', '--node', 'NEW');
  await d.ok('-a', 'set_node_kv', '--node', 'ECIF', '--key', 'saved', '--value', 'yes');
  await d.ok('-a', 'save_config');
  await d.ok('-a', 'set_node_kv', '--node', 'ECIF', '--key', 'unsaved', '--value', 'lost');
  const before = await agent('');
  const epoch1 = String(before.headers['x-ibp-epoch']);
  const index1 = String(before.headers['x-ibp-index']);

  t.equal((await d.stop()).code, 0);
  t.equal((await d.start()).code, 0);
  let st = await status();
  t.same(st.loaded_from, { nodes: 'json', apps: 'json', projects: 'json' });
  t.equal(st.nodes, 5);
  const kvs = JSON.parse(await d.ok('-s', 'nodes_kv', '--node', 'ECIF', '--json'));
  t.same(kvs.map((k: { key: string }) => k.key).sort(), ['hsm', 'saved'], 'saved changes are back, unsaved ones are not');
  t.equal((await d.ok('-s', 'node_credential', '--node', 'CORE')).trim(), cred, 'node credentials survive restarts');

  const t0 = Date.now();
  const after = await agent(`index=${index1}&epoch=${epoch1}&wait=60`);
  t.ok(Date.now() - t0 < 10_000, 'a watch with the old epoch is answered at once');
  t.not(after.headers['x-ibp-epoch'], epoch1, 'with the new epoch: the agent does a full resync');
  t.notOk(JSON.parse(after.body.toString()).nodes.find((n: { node: string }) => n.node === 'ECIF').kvs.unsaved);

  await d.ok('-a', 'build_config');
  t.equal((await d.stop()).code, 0);
  t.equal((await d.start()).code, 0);
  st = await status();
  t.same(st.loaded_from, { nodes: 'bin', apps: 'bin', projects: 'bin' }, 'images newer than their files are loaded');
  t.equal(st.nodes, 5);

  // hand-edit one file after the build: that file wins over its (older) image
  const nodes = JSON.parse(fs.readFileSync(d.home.etc('ibp_nodes.conf'), 'utf8'));
  nodes.nodes.push({ node: 'HAND', invalid: 0, hosts: [], kvs: {} });
  fs.writeFileSync(d.home.etc('ibp_nodes.conf'), JSON.stringify(nodes));
  const future = new Date(Date.now() + 3000);
  fs.utimesSync(d.home.etc('ibp_nodes.conf'), future, future);
  t.equal((await d.stop()).code, 0);
  t.equal((await d.start()).code, 0);
  st = await status();
  t.same(st.loaded_from, { nodes: 'json', apps: 'bin', projects: 'bin' });
  t.equal(st.nodes, 6);

  // a corrupt image fails the start with a message naming it
  fs.writeFileSync(d.home.etc('ibp_apps.conf.bin'), 'IBPBIN1\ngarbage');
  const future2 = new Date(Date.now() + 6000);
  fs.utimesSync(d.home.etc('ibp_apps.conf.bin'), future2, future2);
  t.equal((await d.stop()).code, 0);
  const bad = await d.start();
  t.equal(bad.code, 7);
  t.match(bad.stderr, /ibp_apps\.conf\.bin is unreadable/);
  fs.rmSync(d.home.etc('ibp_apps.conf.bin'));
  t.equal((await d.start()).code, 0, 'with the image removed it starts from the file');
  t.same((await status()).loaded_from, { nodes: 'json', apps: 'json', projects: 'bin' });
});

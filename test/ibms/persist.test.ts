/** Persistence: atomic save with backup and second copy, .bin images, load preferences and errors. */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Home } from '../../lib/home.js';
import { initHome } from '../../ibms/init.js';
import { binOf, bakOf, decodeImage, encodeImage, loadData, prefersImage, saveData, snapshotForSave, snapshotImages, writeImages } from '../../ibms/persist.js';
import type { DataFiles } from '../../ibms/store.js';
import { makeFixture, SAMPLE, writeData } from './fixture.js';

function filesOf(home: Home): DataFiles {
  return { nodes: home.etc('ibp_nodes.conf'), apps: home.etc('ibp_apps.conf'), projects: home.etc('ibp_projects.conf') };
}

t.test('init is idempotent and private', async (t) => {
  const home = new Home(t.testdir());
  const first = initHome(home, { ip: '127.0.0.1', port: 16009 });
  t.ok(first.some((l) => l.endsWith('ibms.conf created')));
  t.equal((fs.statSync(home.keys('admin.credential')).mode & 0o777), 0o600, 'admin credential is 0600');
  t.equal((fs.statSync(home.dir('keys')).mode & 0o777), 0o700, 'keys/ is 0700');
  const cred = fs.readFileSync(home.keys('admin.credential'), 'utf8');
  fs.writeFileSync(home.etc('ibp_nodes.conf'), '{"nodes":[]} // mine');
  const second = initHome(home);
  t.ok(second.every((l) => l.startsWith('WARN : ') && l.endsWith(' exist !')), 'a second init only warns');
  t.equal(fs.readFileSync(home.keys('admin.credential'), 'utf8'), cred, 'the credential is kept');
  t.equal(fs.readFileSync(home.etc('ibp_nodes.conf'), 'utf8'), '{"nodes":[]} // mine', 'files are kept');
  t.match(JSON.parse(fs.readFileSync(home.etc('ibms.conf'), 'utf8')), { server: { ip: '127.0.0.1', port: 16009 } });
});

t.test('save: atomic files, backups of the previous version, second copy, comments allowed on load', async (t) => {
  const home = new Home(t.testdir());
  initHome(home);
  const files = filesOf(home);
  fs.writeFileSync(files.nodes, '// hand-written\n{ "nodes": [ /* none yet */ ] }\n');
  const loaded = loadData(files);
  t.same(loaded.sources, { nodes: 'json', apps: 'json', projects: 'json' });
  const second = path.join(home.root, 'second');
  const r = await saveData(files, snapshotForSave(files, structuredClone(SAMPLE)), second);
  t.same(r.files, [files.nodes, files.apps, files.projects]);
  t.same(r.images, [], 'no image existed: none written');
  t.equal(fs.readFileSync(bakOf(files.nodes), 'utf8'), '// hand-written\n{ "nodes": [ /* none yet */ ] }\n', 'the previous version is the backup');
  t.same(loadData(files).store.toData(), SAMPLE, 'the saved files load back to the same data');
  for (const f of Object.values(files)) t.equal(fs.readFileSync(path.join(second, path.basename(f)), 'utf8'), fs.readFileSync(f, 'utf8'), `second copy of ${path.basename(f)}`);
  const leftovers = fs.readdirSync(home.dir('etc')).filter((n) => !/^(ibms\.conf|ibp_(nodes|apps|projects)\.conf(\.bak)?)$/.test(n));
  t.same(leftovers, [], 'no temporary files left behind');

  // a failing write keeps the previous file: make the target a directory so rename fails
  const blocked = { ...files, projects: path.join(home.dir('etc'), 'blocked') };
  fs.mkdirSync(blocked.projects);
  fs.writeFileSync(path.join(blocked.projects, 'x'), 'x');
  await t.rejects(saveData(blocked, snapshotForSave(blocked, structuredClone(SAMPLE))), { code: 'IBP_ERR_REG_SAVE' });
  t.same(loadData(files).store.toData(), SAMPLE, 'files written before the failure are whole');
});

t.test('images: build, prefer when newer, refuse when corrupt', async (t) => {
  const home = new Home(t.testdir());
  initHome(home);
  const files = filesOf(home);
  writeData(home, structuredClone(SAMPLE));
  const imgs = await writeImages(files, snapshotImages(structuredClone(SAMPLE)));
  t.same(imgs, Object.values(files).map(binOf));
  for (const f of Object.values(files)) t.ok(prefersImage(f), `${path.basename(f)}.bin is newer`);
  const fromBin = loadData(files);
  t.same(fromBin.sources, { nodes: 'bin', apps: 'bin', projects: 'bin' });
  t.same(fromBin.store.toData(), SAMPLE);

  // a JSON file edited after the build wins over its image
  const edited = structuredClone(SAMPLE);
  edited.nodes[2]!.kvs = { edited: 'yes' };
  await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(files.nodes, JSON.stringify({ nodes: edited.nodes }));
  const future = new Date(Date.now() + 5000);
  fs.utimesSync(files.nodes, future, future);
  const mixed = loadData(files);
  t.same(mixed.sources, { nodes: 'json', apps: 'bin', projects: 'bin' });
  t.same(mixed.store.node('CRM').kvs, { edited: 'yes' });

  // a save rewrites existing images so they never go stale behind it
  const snap = snapshotForSave(files, edited);
  t.same(Object.keys(snap.images).sort(), ['apps', 'nodes', 'projects']);
  const saved = await saveData(files, snap);
  t.equal(saved.images.length, 3);
  t.same(loadData(files).store.node('CRM').kvs, { edited: 'yes' }, 'after save, image and file agree');

  // corruption is detected and named
  const bin = binOf(files.apps);
  const bytes = fs.readFileSync(bin);
  bytes[bytes.length - 3] ^= 0xff;
  fs.writeFileSync(bin, bytes);
  t.throws(() => loadData(files), { code: 'IBP_ERR_CFG_BIN_IMAGE', message: new RegExp(`${bin.replace(/[.]/g, '\\.')}.*checksum mismatch`) });
  t.throws(() => decodeImage('x', 'nodes', encodeImage('apps', [])), { message: /holds "apps", expected nodes/ });
  t.throws(() => decodeImage('x', 'nodes', Buffer.from('garbage!garbage!')), { message: /bad magic/ });
  t.throws(() => decodeImage('x', 'nodes', encodeImage('nodes', []).subarray(0, 20)), { message: /truncated|checksum/ });
  t.same(loadData(files, { useImages: false }).sources, { nodes: 'json', apps: 'json', projects: 'json' }, 'images can be ignored');
});

t.test('bad config files name the file and the key', async (t) => {
  const home = new Home(t.testdir());
  initHome(home);
  const files = filesOf(home);
  fs.writeFileSync(files.apps, '{"apps":[{"app":"a","desc":"","bin":"a.so","timeout":-1,"timeout2":0,"invalid":0}]}');
  t.throws(() => loadData(files), { code: 'IBP_ERR_CFG_INVALID', message: /ibp_apps\.conf: key \/apps\/0\/timeout/ });
  fs.writeFileSync(files.apps, '{"apps": [');
  t.throws(() => loadData(files), { code: 'IBP_ERR_CFG_PARSE', message: /ibp_apps\.conf is not valid JSON/ });
  fs.rmSync(files.apps);
  t.throws(() => loadData(files), { code: 'IBP_ERR_CFG_NOT_FOUND', message: /ibp_apps\.conf not found/ });
});

t.test('save_config and build_config through the API; concurrent saves are serialised', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE), conf: (c) => { c.misc.second_config_dump = 'dump'; } });
  await f.call('PUT', '/v1/nodes/CRM/kvs/k', { value: 'v' });
  const [a, b] = await Promise.all([f.call('POST', '/v1/config/save'), f.call('POST', '/v1/config/save')]);
  t.equal(a.status, 200);
  t.equal(b.status, 200);
  t.same(a.json.second.map((p: string) => path.relative(f.home.root, p)), ['dump/ibp_nodes.conf', 'dump/ibp_apps.conf', 'dump/ibp_projects.conf'], 'second copy in the home-relative folder');
  const files = filesOf(f.home);
  t.same(loadData(files).store.node('CRM').kvs, { k: 'v' });
  const built = await f.call('POST', '/v1/config/build');
  t.same(built.json.images, Object.values(files).map(binOf));
  t.same(loadData(files).sources, { nodes: 'bin', apps: 'bin', projects: 'bin' });
});

t.test('property: an image decodes to exactly what was encoded (keys, order, absent optionals)', async (t) => {
  const { default: fc } = await import('fast-check');
  const { decodeImage: dec, encodeImage: enc } = await import('../../ibms/image.js');
  const name = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}$/);
  const text = fc.string({ maxLength: 20, unit: 'binary' });
  const host = fc.record({ ip: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }), invalid: fc.constantFrom(0, 1) }, { requiredKeys: ['ip', 'port'] });
  const node = fc.record({ node: name, invalid: fc.constantFrom(0, 1), key_exp: text, hosts: fc.array(host, { maxLength: 4 }), kvs: fc.dictionary(name, text, { maxKeys: 3 }) }, { requiredKeys: ['node', 'invalid', 'hosts', 'kvs'] });
  const app = fc.record({ app: name, desc: text, bin: name.map((n) => `${n}.so`), timeout: fc.double({ min: 0.001, max: 86400, noNaN: true }), timeout2: fc.double({ min: 0, max: 86400, noNaN: true }), invalid: fc.constantFrom(0, 1), server_node: fc.oneof(name, fc.constant('')) }, { requiredKeys: ['app', 'desc', 'bin', 'timeout', 'timeout2', 'invalid'] });
  const project = fc.record({ project: name, server_nodes: fc.array(name, { maxLength: 4 }), client_nodes: fc.array(name, { maxLength: 4 }), apps: fc.array(name, { maxLength: 4 }) });
  const order = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
  fc.assert(
    fc.property(fc.array(node, { maxLength: 6 }), fc.array(app, { maxLength: 6 }), fc.array(project, { maxLength: 4 }), (nodes, apps, projects) => {
      const n = nodes.map((x) => ({ ...order(x, ['node', 'invalid', 'key_exp', 'hosts', 'kvs']), hosts: x.hosts.map((h) => order(h, ['ip', 'port', 'invalid'])) }));
      const a = apps.map((x) => order(x, ['app', 'desc', 'bin', 'timeout', 'timeout2', 'invalid', 'server_node']));
      return JSON.stringify(dec('f', 'nodes', enc('nodes', n as never))) === JSON.stringify(n)
        && JSON.stringify(dec('f', 'apps', enc('apps', a as never))) === JSON.stringify(a)
        && JSON.stringify(dec('f', 'projects', enc('projects', projects as never))) === JSON.stringify(projects);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random configs round-trip');
});

/**
 * App packages with the real daemon: the so/ watcher (misc.auto_download_bin_enable) distributes
 * the nodes of a replaced package at once; entitled nodes download the bytes with their sha256.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { makeDaemon } from './daemon-fixture.js';
import { SAMPLE } from './fixture.js';

const sha = (b: Buffer | string): string => crypto.createHash('sha256').update(b).digest('hex');

t.test('a .so replaced in so/ is picked up and its nodes are released at once', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE), conf: (c) => { c.misc.auto_download_bin_enable = 1; } });
  const cred = (await d.ok('-s', 'node_credential', '--node', 'ECIF')).trim();
  const auth = { authorization: `Bearer ${cred}` };
  const first = await d.http('GET', '/v1/agent/config?node=ECIF', { headers: auth });
  const epoch = String(first.headers['x-ibp-epoch']);
  const index = Number(first.headers['x-ibp-index']);
  t.match(JSON.parse(first.body.toString()).apps.find((a: { app: string }) => a.app === 'ibp_test_echo'), { sha256: '', size: 0 });

  const held = d.http('GET', `/v1/agent/config?node=ECIF&index=${index}&epoch=${epoch}&wait=60`, { headers: auth, timeoutMs: 60_000 });
  await waitFor('the watch to be held', async () => JSON.parse(await d.ok('-s', 'status', '--json')).worker.watches === 1, 10_000, 100);
  const v1 = Buffer.from('package version 1');
  const tmp = d.home.so('.incoming.tmp');
  fs.writeFileSync(tmp, v1);
  fs.renameSync(tmp, d.home.so('ibp_test_echo.so')); // replaced by rename, as deploy tools do
  const r = await held;
  t.ok(Number(r.headers['x-ibp-index']) > index, 'the watch is released with a new version');
  t.match(JSON.parse(r.body.toString()).apps.find((a: { app: string }) => a.app === 'ibp_test_echo'), { sha256: sha(v1), size: v1.length });
  t.equal(await d.ok('-s', 'nodes_changed'), '', 'distributed at once: nothing left pending');

  const pkg = await d.http('GET', '/v1/agent/packages/ibp_test_echo.so', { headers: auth });
  t.equal(pkg.status, 200);
  t.ok(pkg.body.equals(v1));
  t.equal(pkg.headers['x-ibp-sha256'], sha(v1));

  // written in place (no rename): picked up once it stops changing
  const v2 = Buffer.from('package version 2, longer');
  fs.writeFileSync(d.home.so('ibp_test_echo.so'), v2);
  await waitFor('the new package hash in the bundle', async () => {
    const b = await d.http('GET', '/v1/agent/config?node=ECIF', { headers: auth });
    return JSON.parse(b.body.toString()).apps.find((a: { app: string }) => a.app === 'ibp_test_echo').sha256 === sha(v2);
  }, 15_000, 100);
  t.pass('in-place write picked up');
  t.match(fs.readFileSync(d.home.log('ibms_worker.log'), 'utf8'), /package ibp_test_echo\.so changed sha256\[/);

  // a .so no app uses is ignored; a non-.so file is ignored
  fs.writeFileSync(d.home.so('unused.so'), 'x');
  fs.writeFileSync(d.home.so('notes.txt'), 'x');
  await waitFor('the unused package to be logged', () => fs.readFileSync(d.home.log('ibms_worker.log'), 'utf8').includes('package unused.so changed , no app uses it'), 10_000, 100);
  t.equal(await d.ok('-s', 'nodes_changed'), '');
});

t.test('without the watcher: update_app marks the change; only entitled nodes download', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE) });
  fs.writeFileSync(d.home.so('batch_run.so'), 'batch v1');
  const batch = (await d.ok('-s', 'node_credential', '--node', 'BATCH')).trim();
  const core = (await d.ok('-s', 'node_credential', '--node', 'CORE')).trim();
  await new Promise((r) => setTimeout(r, 400));
  t.equal(await d.ok('-s', 'nodes_changed'), '', 'no watcher: a new file alone changes nothing');
  await d.ok('-a', 'update_app', '--app', 'batch_run');
  t.same(JSON.parse(await d.ok('-s', 'nodes_changed', '--json')).sort(), ['BATCH', 'CORE']);
  const ok = await d.http('GET', '/v1/agent/packages/batch_run.so', { headers: { authorization: `Bearer ${batch}` } });
  t.equal(ok.status, 200, "the app's server_node downloads it");
  t.equal(ok.headers['x-ibp-sha256'], sha('batch v1'));
  const no = await d.http('GET', '/v1/agent/packages/batch_run.so', { headers: { authorization: `Bearer ${core}` } });
  t.equal(no.status, 403, 'a client node does not');
  t.match(JSON.parse(no.body.toString()), { code: 'IBP_ERR_REG_FORBIDDEN' });
  t.match(fs.readFileSync(d.home.log('ibms_worker.log'), 'utf8'), /package refused , node\[CORE\] bin\[batch_run\.so\]/);
});

t.test('signed manifests: init makes the key pair, a home without one gets it at start, bundles carry verifiable manifests', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE), start: false });
  const key = d.home.keys('package-signing.key');
  const pub = d.home.keys('package-signing.pub');
  t.equal(fs.statSync(key).mode & 0o777, 0o600, 'ibms -a init made the private key, mode 0600');
  t.equal(fs.statSync(pub).mode & 0o777, 0o644, 'and the public key, mode 0644');
  const again = await d.ok('-a', 'init');
  t.match(again, /WARN : .*package-signing\.key exist !/, 'a second init keeps it');
  // a home from before signing: the key is made at start, and the start says so
  fs.rmSync(key);
  fs.rmSync(pub);
  const started = await d.start();
  t.equal(started.code, 0, started.stderr);
  t.equal(fs.statSync(key).mode & 0o777, 0o600, 'created at start, mode 0600');
  t.match(fs.readFileSync(d.home.log('ibms_worker.log'), 'utf8'), /package-signing key created , file\[.*package-signing\.key\]/);
  const publicKey = crypto.createPublicKey(fs.readFileSync(pub, 'utf8'));

  fs.writeFileSync(d.home.so('batch_run.so'), 'batch v1');
  await d.ok('-a', 'update_app', '--app', 'batch_run');
  const cred = (await d.ok('-s', 'node_credential', '--node', 'BATCH')).trim();
  const b = JSON.parse((await d.http('GET', '/v1/agent/config?node=BATCH', { headers: { authorization: `Bearer ${cred}` } })).body.toString());
  t.equal(b.package_key, publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), 'the bundle carries the public key');
  const app = b.apps.find((a: { app: string }) => a.app === 'batch_run');
  const m = JSON.parse(app.manifest);
  t.same(Object.keys(m), ['abi_version', 'app', 'bin', 'sha256', 'size', 'time'], 'canonical: keys sorted');
  t.match(m, { abi_version: 1, app: 'batch_run', bin: 'batch_run.so', sha256: sha('batch v1'), size: 8 });
  t.ok(crypto.verify(null, Buffer.from(app.manifest), publicKey, Buffer.from(app.signature, 'base64')), 'the signature verifies with keys/package-signing.pub');
  const flipped = Buffer.from(app.signature, 'base64');
  flipped[0]! ^= 1;
  t.notOk(crypto.verify(null, Buffer.from(app.manifest), publicKey, flipped), 'a flipped bit does not');
  const none = b.apps.find((a: { sha256: string }) => a.sha256 === '');
  if (none) t.equal(none.manifest, undefined, 'an app without a package has no manifest');
});

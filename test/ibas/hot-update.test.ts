// Hot app update against a real ibas under a client loop (long and short connections):
//   1. v2 renamed over v1 (ibma's way)          → answers switch from v1: to v2:, zero failures
//   2. bin removed with `<bin>.updating` present → the workers load .updating (v1 again), zero failures
//   3. .updating renamed back to bin            → still served, zero failures
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../helpers/procs.js';
import { APPS_DIR, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';

t.test('replacing an app .so under a client loop', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_ver', bin: 'ibp_test_ver.so' }] });
  const so = path.join(s.home, 'so');
  const bin = path.join(so, 'ibp_test_ver.so');
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_ver_v1.so'), bin);
  await s.start();
  await waitWorkers(s, 2);
  const expect = (req: string, body: string): boolean => body === `v1:${req}` || body === `v2:${req}`;
  const long = startLoop(s.ip, s.port, { loops: 1, long: true, app: 'ibp_test_ver', expect });
  const short = startLoop(s.ip, s.port, { loops: 1, long: false, app: 'ibp_test_ver', expect });
  await waitFor('v1 answers', () => (long.stats.answers.get('v1') ?? 0) > 20 && (short.stats.answers.get('v1') ?? 0) > 5 ? true : undefined, 20_000);

  // 1. rename v2 over v1
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_ver_v2.so'), `${bin}.tmp`);
  fs.renameSync(`${bin}.tmp`, bin);
  const v2Before = long.stats.answers.get('v2') ?? 0;
  await waitFor('v2 answers on both loops', () => (long.stats.answers.get('v2') ?? 0) > v2Before + 20 && (short.stats.answers.get('v2') ?? 0) > 5 ? true : undefined, 20_000);
  for (let i = 0; i < 4; i++) t.equal((await callOnce(s.ip, s.port, 'ibp_test_ver', 'x')).body.toString(), 'v2:x', `new connection ${i} runs v2`);

  // 2. bin gone, .updating there (an update in progress): served from .updating
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_ver_v1.so'), `${bin}.updating`);
  fs.unlinkSync(bin);
  const v1Mark = long.stats.answers.get('v1') ?? 0;
  await waitFor('v1 answers again (from .updating)', () => (long.stats.answers.get('v1') ?? 0) > v1Mark + 20 ? true : undefined, 20_000);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_ver', 'y')).body.toString(), 'v1:y', 'a new call runs the .updating file');

  // 3. the update finishes: .updating → bin
  fs.renameSync(`${bin}.updating`, bin);
  const okMark = long.stats.ok;
  await waitFor('more answers after the rename', () => long.stats.ok > okMark + 20 ? true : undefined, 20_000);

  const [l, sh] = [await long.stop(), await short.stop()];
  t.equal(l.failed + sh.failed, 0, `zero failed transactions (long ${l.ok} ok, short ${sh.ok} ok; answers long ${JSON.stringify([...l.answers])}) ${[...l.reasons, ...sh.reasons].slice(0, 3).join(' | ')}`);
  t.notMatch(s.log('monitor'), /signal\[/, 'no worker died');
  t.equal((await s.stop()).code, 0);
});

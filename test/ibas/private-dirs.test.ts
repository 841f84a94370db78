// Nothing left behind: each worker's private app folder (ibas/app-cache.ts:
// <tmp>/ibp-so-<hash of so dir>-w<slot>-<pid>) is removed by the worker on a graceful stop (it
// leaves with _exit, so explicitly) and by the manager when a worker was killed (SIGKILL).
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { workerPrivateDir } from '../../ibas/app-cache.js';

t.test('no /tmp/ibp-so-* of the workers is left after a kill and after a stop', async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  await s.start();
  const soDir = path.join(s.home, 'so');
  const dirOf = (w: { index: number; pid: number }) => workerPrivateDir(soDir, w.index, w.pid);
  // load the app in both workers (two long connections hold one worker each)
  const { TestClient } = await import('./helpers/client.js');
  const workers = await waitWorkers(s, 2);
  const [a, b] = [await TestClient.connect(s.ip, s.port), await TestClient.connect(s.ip, s.port)];
  for (const c of [a, b]) t.equal((await c.call('ibp_test_echo', 'x')).rc, 0);
  a.close();
  b.close();
  const seen = await waitFor('both workers have a private folder', () => workers.every((w) => fs.existsSync(dirOf(w))) ? workers : undefined, 10_000);
  t.ok(path.basename(dirOf(seen[0]!)).startsWith('ibp-so-'), `the folder is under ${os.tmpdir()}: ${dirOf(seen[0]!)}`);

  // killed: the manager removes it
  const victim = seen[0]!;
  process.kill(victim.pid, 'SIGKILL');
  await waitFor('the killed worker reaped', () => s.slots().every((w) => w.pid !== victim.pid) ? true : undefined, 10_000);
  await waitFor('its folder removed by the manager', () => !fs.existsSync(dirOf(victim)) ? true : undefined, 5000);
  t.pass('the folder of the SIGKILLed worker is gone');

  // graceful stop: every worker's folder goes
  const now = await waitWorkers(s, 2);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'y')).rc, 0);
  const all = [...now, seen[1]!];
  t.ok(all.some((w) => fs.existsSync(dirOf(w))), 'a live worker has its folder before the stop');
  t.equal((await s.stop()).code, 0);
  t.same(all.filter((w) => fs.existsSync(dirOf(w))).map(dirOf), [], 'no private folder of any worker is left after the stop');
  const prefix = path.basename(workerPrivateDir(soDir, 0, 1)).replace(/-w0-1$/, '');
  t.same(fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith(prefix)), [], `nothing named ${prefix}-* in ${os.tmpdir()}`);
});

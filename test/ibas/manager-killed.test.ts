// `ibas -a kill` (or a manager crash): the workers do not outlive their manager (the kernel sends
// them SIGTERM), so the listen socket is freed and the next `-a start` works, cleaning the
// scoreboard and lock the killed manager left.
import t from 'tap';
import { isAlive, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

t.test('workers follow a killed manager; a new start cleans up', async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  const first = await s.start();
  const workers = (await waitWorkers(s, 2)).map((w) => w.pid);
  const kill = await s.ibas(['-f', s.conf, '-a', 'kill']);
  t.equal(kill.code, 0, kill.stderr);
  await waitFor('the workers to leave after their manager', () => workers.every((p) => !isAlive(p)), 15_000);
  t.pass('no worker outlives the manager');
  t.notOk(isAlive(first));

  const second = await s.start();
  t.not(second, first, 'a new manager');
  await waitWorkers(s, 2);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'again')).body.toString(), 'again', 'serving again on the same port');
  t.equal((await s.stop()).code, 0);
  await assertStoppedClean(t, s);
});

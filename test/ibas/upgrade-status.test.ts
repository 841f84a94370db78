// `ibas -s status` during a USR2 handover (ibas/upgrade.ts) shows both generations — the old
// manager (pid from `.oldbin`) and the new one — and never "not running": a slow transaction on
// the old generation keeps it alive after the new one took over, so the handover lasts seconds.
import t from 'tap';
import { isAlive, waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

t.test('status during the handover shows both generations', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 30 }] });
  const oldPid = await s.start();
  await waitWorkers(s, 2);
  const slow = callOnce(s.ip, s.port, 'ibp_test_slow', '5000', { timeoutMs: 30_000 });
  await waitFor('the slow transaction runs', () => s.slots().some((w) => w.state === 'WORKING' && w.app === 'ibp_test_slow') ? true : undefined, 10_000);
  process.kill(oldPid, 'SIGUSR2');
  const outputs: { code: number | null; stdout: string }[] = [];
  const deadline = Date.now() + 40_000;
  while (isAlive(oldPid) && Date.now() < deadline) outputs.push(await s.ibas(['-f', s.conf, '-s', 'status']));
  t.notOk(isAlive(oldPid), 'the old generation left once its transaction was done');
  t.equal((await slow).body.toString(), 'slept:5000', 'the slow transaction was answered by the old generation');
  // at least once while both generations lived (a loaded machine may fit only one status in)
  t.ok(outputs.length >= 1, `status asked ${outputs.length} times during the handover`);
  const notRunning = outputs.filter((o) => o.code !== 0);
  t.same(notRunning.map((o) => o.stdout.trim()), [], 'status never said "not running" during the handover');
  const both = outputs.map((o) => /upgrade\[(\w+)\] , old: generation 1 pid\[(\d+)\] \(\S+\.oldbin\) , new: generation 2 pid\[(\d+)\]/.exec(o.stdout)).filter((m) => m !== null);
  t.ok(both.length > 0, `status showed both generations (${both.map((m) => m![1]).join(', ')})`);
  t.ok(both.every((m) => Number(m![2]) === oldPid), 'naming the old manager');
  const newPid = s.managerPid();
  t.ok(both.some((m) => Number(m![3]) === newPid), `and the new one (${newPid})`);
  await waitFor('the upgrade state gone from status', async () => !/upgrade\[/.test((await s.ibas(['-f', s.conf, '-s', 'status'])).stdout) ? true : undefined, 10_000);
  t.pass('once the old generation left, status shows one generation');
  t.equal((await s.stop()).code, 0);
});

// max_process_count: a worker leaves after that many transactions (between transactions, never
// cutting one) and the manager replaces it; a long connection on a leaving worker is closed with
// POOL_STOPPING after its last transaction, so the client reconnects knowing nothing was lost.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { RC } from '../../lib/protocol/result-codes.js';

t.test('workers are recycled after max_process_count transactions', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, maxProcessCount: 5 });
  await s.start();
  const first = (await waitWorkers(s, 2)).map((w) => w.pid);

  let ok = 0;
  for (let i = 0; i < 24; i++) {
    const r = await callOnce(s.ip, s.port, 'ibp_test_echo', `r${i}`, { timeoutMs: 20_000 });
    if (r.rc === 0 && r.body.toString() === `r${i}`) ok++;
  }
  t.equal(ok, 24, 'every short-connection transaction succeeded through the recycling');
  await waitFor('first workers replaced', () => s.slots().length === 2 && s.slots().every((w) => !first.includes(w.pid)), 20_000);
  t.pass('both original workers were replaced');
  t.match(s.log('monitor'), /worker exited , pid\[\d+\] slot\[\d+\] code\[0\] transactions\[5\]/, 'a recycled worker exits 0 after 5 transactions');
  t.notMatch(s.log('monitor'), /signal\[/, 'no worker was killed');

  // a long connection: 5 transactions, then a clean close between transactions
  await waitWorkers(s, 2);
  const c = await TestClient.connect(s.ip, s.port);
  let served = 0;
  let closedCleanly = false;
  for (let i = 0; i < 8; i++) {
    try {
      const r = await c.call('ibp_test_echo', `long ${i}`);
      if (r.rc === 0) served++;
    } catch (e) {
      closedCleanly = (e as { rc?: number }).rc === RC.POOL_STOPPING;
      break;
    }
  }
  t.ok(served >= 1 && served <= 5, `served ${served} transactions on the long connection before the worker left`);
  t.ok(closedCleanly, 'then the connection ended with POOL_STOPPING (nothing ran)');
  c.close();
  t.equal((await s.stop()).code, 0);
});

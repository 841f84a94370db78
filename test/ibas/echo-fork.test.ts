// FORK: the manager accepts and starts a short-lived worker per connection (at most max_count at
// once); each serves its connection — short or long — and exits.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { assertStoppedClean, echoLoop, setupIbas } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';

t.test('FORK mode echo', async (t) => {
  const s = await setupIbas(t, { mode: 'FORK', maxCount: 2 });
  await s.start();
  t.same(s.slots(), [], 'no worker before the first connection');

  for (let i = 0; i < 3; i++) {
    const r = await callOnce(s.ip, s.port, 'ibp_test_echo', `fork ${i}`);
    t.equal(r.body.toString(), `fork ${i}`, `short connection ${i} echoed`);
  }
  t.equal(await echoLoop(s, 50), 50, '50 echoes on one long connection served by one FORK worker');

  // three clients at once with max_count 2: the third waits in the backlog, then is served
  const held = await Promise.all([0, 1].map(() => TestClient.connect(s.ip, s.port)));
  for (const [i, c] of held.entries()) t.equal((await c.call('ibp_test_echo', `held ${i}`)).body.toString(), `held ${i}`);
  const live = s.slots();
  t.equal(live.length, 2, 'two FORK workers hold the two connections');
  t.not(live[0]!.pid, live[1]!.pid, 'one worker per connection');
  const third = callOnce(s.ip, s.port, 'ibp_test_echo', 'third');
  await new Promise((r) => setTimeout(r, 300));
  t.ok(s.slots().length <= 2, 'never more than max_count FORK workers');
  held[0]!.close();
  t.equal((await third).body.toString(), 'third', 'the waiting connection is served once a worker left');
  held[1]!.close();
  await waitFor('FORK workers to exit', () => s.slots().length === 0, 15_000);
  t.match(s.log('monitor'), /worker exited , pid\[\d+\] slot\[\d+\] code\[0\]/, 'exits are logged');

  const stop = await s.stop();
  t.equal(stop.code, 0, stop.stderr);
  await assertStoppedClean(t, s);
});

// DYNAMIC_WORKERPOOL: the pool grows under load (idle < min_idle_count → spawn, create_interval
// per period) up to max_count and no further, and shrinks back when the load is gone
// (idle > max_idle_count → retire, destroy_interval per period).
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

t.test('dynamic pool grows and shrinks within its limits', async (t) => {
  const s = await setupIbas(t, {
    mode: 'DYNAMIC_WORKERPOOL', maxCount: 4, minIdle: 1, maxIdle: 1,
    patch: (c) => { c.monitor.adjust_interval = 0.3; c.mpm.DYNAMIC_WORKERPOOL.destroy_interval = 2; },
  });
  await s.start();
  await waitWorkers(s, 1);
  t.pass('starts with max(min_idle_count, 1) = 1 worker');

  let maxSeen = 0;
  const sampler = setInterval(() => { maxSeen = Math.max(maxSeen, s.slots().length); }, 50);
  t.teardown(() => clearInterval(sampler));

  // five long connections, each holding a worker between transactions
  const clients: TestClient[] = [];
  for (let i = 0; i < 5; i++) clients.push(await TestClient.connect(s.ip, s.port));
  const served = Promise.all(clients.slice(0, 4).map(async (c, i) => (await c.call('ibp_test_echo', `c${i}`, { timeoutMs: 30_000 })).body.toString()));
  t.same(await served, ['c0', 'c1', 'c2', 'c3'], 'four long connections served as the pool grows');
  await waitWorkers(s, 4);
  t.pass('grew to max_count = 4');
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(s.slots().length, 4, 'does not grow past max_count with a fifth connection waiting');
  t.match(s.log('monitor'), /dynamic pool at max_count/, 'reaching max_count is logged');

  for (const c of clients.slice(0, 4)) c.close();
  t.equal((await clients[4]!.call('ibp_test_echo', 'fifth', { timeoutMs: 30_000 })).body.toString(), 'fifth', 'the fifth connection is served once one frees');
  clients[4]!.close();

  const shrinkStart = Date.now();
  await waitFor('the pool to shrink to 1 idle worker', () => s.slots().length === 1, 20_000).catch((e) => { t.comment(s.log('monitor')); t.comment(JSON.stringify(s.slots())); throw e; });
  t.ok(Date.now() - shrinkStart > 300, 'shrinking takes adjustment periods (destroy_interval 2 per period)');
  t.match(s.log('monitor'), /dynamic pool adjusted , workers\[\d+\] idle\[\d+\] spawned\[0\] retired\[[12]\]/, 'retirements are logged');
  t.ok(maxSeen <= 4, `never above max_count (max seen ${maxSeen})`);

  const stop = await s.stop();
  t.equal(stop.code, 0, stop.stderr);
  await assertStoppedClean(t, s);
});

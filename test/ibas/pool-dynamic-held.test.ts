// DYNAMIC_WORKERPOOL grows when every worker is held by a connection that runs no transaction
// (issue 9): a silent connection (accepted, nothing sent: READING) and a long connection between
// transactions (KEEPALIVE) each hold a worker without a transaction running; the pool spawns so
// that a new client is still served. Long deadlines here, so the holders stay for the test.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { RawPeer } from './helpers/raw-peer.js';

t.test('a dynamic pool grows past workers held by idle connections', async (t) => {
  const s = await setupIbas(t, {
    mode: 'DYNAMIC_WORKERPOOL', maxCount: 3, minIdle: 1, maxIdle: 1,
    patch: (c) => {
      c.monitor.adjust_interval = 0.3;
      Object.assign(c.comm, { header_timeout: 30, request_timeout: 30, keepalive_timeout: 30 });
    },
  });
  await s.start();
  const [first] = await waitWorkers(s, 1);

  // a silent connection takes the only worker
  const silent = await RawPeer.connect(s.ip, s.port);
  t.teardown(() => silent.close());
  const held = await waitFor('the worker to hold the silent connection', () => s.slots().find((w) => w.pid === first!.pid && w.connections > 0), 10_000);
  t.equal(held.state, 'READING', 'the worker holding a silent connection shows READING (not a running transaction)');
  t.equal(held.txStartAt, 0, 'no transaction is running on it');
  await waitWorkers(s, 2, 15_000);
  t.pass('the pool grew to 2 workers while the only one was held by a silent connection');

  // a long connection after one transaction holds the second worker
  const long = await TestClient.connect(s.ip, s.port);
  t.teardown(() => long.close());
  t.equal((await long.call('ibp_test_echo', 'once', { timeoutMs: 15_000 })).body.toString(), 'once', 'the new worker serves a long connection');
  const kept = await waitFor('a worker in KEEPALIVE', () => s.slots().find((w) => w.state === 'KEEPALIVE'), 5000);
  t.equal(kept.txStartAt, 0, 'the long connection between transactions runs no transaction');
  await waitWorkers(s, 3, 15_000);
  t.pass('the pool grew to 3 when both workers were held by connections without a transaction');

  // a new client is served by the third
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'third', { timeoutMs: 15_000 })).body.toString(), 'third', 'a new client is served');
  t.match(s.log('monitor'), /dynamic pool adjusted , workers\[1\] idle\[0\] spawned\[1\]/, 'the first growth is logged with no idle worker');
  silent.close();
  long.close();
  t.equal((await s.stop()).code, 0);
});

// Issue 10: a worker follows the newest config between transactions, not only between
// connections. With a pool of 2 whose workers both read the old segment, an app distributed
// afterwards answers its very first call on short connections and on long connections that
// were opened before the distribution.
import t, { type Test } from 'tap';
import { NODE, DEFAULT_APPS, app, setupIbas, waitWorkers, type IbasHome } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';

let version = 1;

/** Publish the next config version with these extra apps (what ibma does after distribute_config). */
function distribute(s: IbasHome, extra: string[]): void {
  version++;
  s.writer!.publish({
    epoch: 'test', version, this_node: NODE,
    nodes: [{ node: NODE, invalid: 0, hosts: [{ ip: s.ip, port: s.port }], kvs: {} }],
    apps: [...DEFAULT_APPS, ...extra.map((code) => app(code, 'ibp_test_echo.so'))],
  }, { ibms: { ip: s.ip, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 512 });
}

/** Hold both workers of the pool with one long connection each, each having read the current config. */
async function holdBoth(t: Test, s: IbasHome): Promise<[TestClient, TestClient]> {
  const a = await TestClient.connect(s.ip, s.port);
  const b = await TestClient.connect(s.ip, s.port);
  t.teardown(() => {
    a.close();
    b.close();
  });
  for (const c of [a, b]) t.equal((await c.call('ibp_test_echo', 'warm')).rc, RC.OK, 'a worker read the config');
  await waitFor('both workers held', () => s.slots().filter((w) => w.state === 'KEEPALIVE').length === 2, 10_000);
  return [a, b];
}

t.test('the first call to a newly distributed app succeeds, short and long connections', async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  await s.start();
  await waitWorkers(s, 2);

  // short connections: both workers attached to version 1, then idle when version 2 comes
  const [a, b] = await holdBoth(t, s);
  a.close();
  b.close();
  await waitFor('both workers idle again', () => s.slots().every((w) => w.state === 'IDLE' || w.state === 'LISTEN'), 10_000);
  distribute(s, ['ibp_new_short']);
  for (let i = 0; i < 6; i++) {
    const r = await callOnce(s.ip, s.port, 'ibp_new_short', `short ${i}`);
    t.equal(r.rc, RC.OK, `short connection call ${i} to the new app: OK (${r.message})`);
    t.equal(r.body.toString(), `short ${i}`);
  }

  // long connections opened before the distribution: the next transaction on each sees it
  const [l1, l2] = await holdBoth(t, s);
  distribute(s, ['ibp_new_short', 'ibp_new_long']);
  for (const [i, c] of [l1, l2].entries()) {
    const r = await c.call('ibp_new_long', `long ${i}`);
    t.equal(r.rc, RC.OK, `long connection ${i}: the new app answers its first call (${r.message})`);
    t.equal((await c.call('ibp_test_echo', 'still')).rc, RC.OK, `long connection ${i}: older apps still answer`);
  }
  // and an app dropped by a distribution is refused on the same long connection
  distribute(s, []);
  t.equal((await l1.call('ibp_new_long', 'gone')).rc, RC.APP_UNKNOWN, 'an app no longer distributed: APP_UNKNOWN');
  l1.close();
  l2.close();
  t.match(s.log(0) + s.log(1), /config space switched/, 'the switch is logged');
  t.equal((await s.stop()).code, 0);
});

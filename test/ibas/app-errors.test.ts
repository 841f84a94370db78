// Unknown app, invalid app, missing .so, a .so without somain, an app returning non-zero, and a
// server without config space: each answers a clear result code (and the pre-answer already
// rejects what it can), the connection and the worker go on serving.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { RC } from '../../lib/protocol/result-codes.js';

t.test('app errors answer clear codes', async (t) => {
  const s = await setupIbas(t, { maxCount: 1 });
  await s.start();
  await waitWorkers(s, 1);
  const c = await TestClient.connect(s.ip, s.port);
  t.teardown(() => c.close());

  const unknown = await c.call('no_such_app', 'x');
  t.equal(unknown.preRc, RC.APP_UNKNOWN, 'unknown app: rejected in the pre-answer');
  t.equal(unknown.rc, RC.APP_UNKNOWN, 'and in the response');
  t.match(unknown.message, /app no_such_app is not configured on this node/);

  const unknownWait = await c.call('no_such_app', 'x', { waitPre: true, files: [{ name: 'f', data: Buffer.from('file') }] });
  t.equal(unknownWait.rc, RC.APP_UNKNOWN, 'a rejected transaction with files keeps the connection in step');

  const invalid = await c.call('ibp_test_invalid', 'x');
  t.equal(invalid.preRc, RC.APP_INVALID, 'invalid app: rejected');
  t.match(invalid.message, /marked invalid/);

  const missing = await c.call('ibp_test_missing', 'x');
  t.equal(missing.preRc, RC.OK, 'missing .so: the app is configured, so the pre-answer accepts');
  t.equal(missing.rc, RC.APP_LOAD, 'missing .so: APP_LOAD');
  t.match(missing.message, /ibp_test_no_such_file\.so/, 'the message names the file');

  const nosomain = await c.call('ibp_test_nosomain', 'x');
  t.equal(nosomain.rc, RC.APP_LOAD, '.so without somain: APP_LOAD');
  t.match(nosomain.message, /somain/);

  const failed = await c.call('ibp_test_rc', '7:no such account');
  t.equal(failed.rc, RC.APP_FAILED, 'app returned non-zero: APP_FAILED');
  t.equal(failed.appRc, 7, 'with the app\'s own code');
  t.equal(failed.body.toString(), 'no such account', 'and the response it wrote');

  t.equal((await c.call('ibp_test_echo', 'still fine')).body.toString(), 'still fine', 'the connection and worker still serve');
  t.equal(s.slots()[0]!.errors, 6, 'failed transactions are counted on the slot');
  // the line of a transaction is written after its answer left: wait for the last one
  await waitFor('the last transaction line', () => /rc\[0 OK\]/.test(s.log(0)) ? true : undefined, 10_000);
  t.match(s.log(0), /transaction , journal\[\] app\[no_such_app\] client\[test_client 127\.[\d.]+:\d+\] rc\[1001 APP_UNKNOWN\]/, 'every outcome has its transaction log line');
  t.match(s.log(0), /rc\[0 OK\] app_rc\[0\] receive_us\[\d+\] app_us\[\d+\] send_us\[\d+\]/, 'with the time split');
  t.equal((await s.stop()).code, 0);
});

t.test('no config space: POOL_NO_SPACE, then served once ibma publishes', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, noSpace: true });
  await s.start();
  await waitWorkers(s, 1);
  const c = await TestClient.connect(s.ip, s.port);
  t.teardown(() => c.close());
  const r = await c.call('ibp_test_echo', 'x');
  t.equal(r.rc, RC.POOL_NO_SPACE, 'no config space: POOL_NO_SPACE');
  t.match(r.message, /no config space/);
  // publish now, as ibma would
  const { ConfigSpaceWriter } = await import('../../lib/shm/config-segment.js');
  const { DEFAULT_APPS, NODE } = await import('./helpers/server.js');
  const w = new ConfigSpaceWriter(s.indexKey);
  t.teardown(() => w.removeAll());
  w.publish({ epoch: 'e', version: 1, this_node: NODE, nodes: [{ node: NODE, invalid: 0, hosts: [{ ip: s.ip, port: s.port }], kvs: {} }], apps: DEFAULT_APPS },
    { ibms: { ip: s.ip, port: 1 }, connecting_timeout: 1, retry_connect_timeval: 1, min_compress_size: 512 });
  await new Promise((res) => setTimeout(res, 1100)); // the worker re-tries the space at most once a second
  const ok = await c.call('ibp_test_echo', 'now');
  t.equal(ok.rc, RC.OK, 'served once the space exists');
  t.equal(ok.body.toString(), 'now');
  t.equal((await s.stop()).code, 0);
});

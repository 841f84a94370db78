// `ibas -a stop` while a transaction runs: it finishes and is answered, the connection is then
// closed with POOL_STOPPING (nothing else ran: safe to retry elsewhere), and nothing is left:
// no process, no scoreboard segment, no semaphore, no pid file.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { RC } from '../../lib/protocol/result-codes.js';

t.test('graceful stop lets the running transaction finish', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 10 }] });
  const managerPid = await s.start();
  await waitWorkers(s, 2);
  const c = await TestClient.connect(s.ip, s.port);
  const idle = await TestClient.connect(s.ip, s.port);
  t.equal((await idle.call('ibp_test_echo', 'x')).rc, 0);
  const running = c.call('ibp_test_slow', '1500');
  await waitFor('the slow transaction to run', () => s.slots().some((w) => w.state === 'WORKING'), 10_000);

  const stopping = s.stop();
  const r = await running;
  t.equal(r.rc, 0, 'the running transaction completed');
  t.equal(r.body.toString(), 'slept:1500');
  const rest = await c.waitClosed(10_000);
  t.match(rest.find((p) => p.type === 'ERROR'), { rc: RC.POOL_STOPPING }, 'then the connection is closed with POOL_STOPPING');
  const restIdle = await idle.waitClosed(10_000);
  t.match(restIdle.find((p) => p.type === 'ERROR'), { rc: RC.POOL_STOPPING }, 'an idle long connection is closed at once with POOL_STOPPING');
  const st = await stopping;
  t.equal(st.code, 0, st.stderr);
  t.equal(st.stdout, `ibas stop ok , pid[${managerPid}]\n`, 'only the result line (no "not running" status)');
  t.match(s.log('monitor'), /signal SIGTERM received , graceful stop[\s\S]*manager stopped/);
  await assertStoppedClean(t, s);

  const again = await s.ibas(['-f', s.conf, '-a', 'stop']);
  t.equal(again.code, 7, 'stopping a stopped server: exit 7');
  t.match(again.stderr, /ibas is not running/);
});

// kill -9 of the worker holding the accept lock (state LISTEN, blocked in poll): the kernel
// releases the SEM_UNDO semaphore, another worker becomes the leader, new connections are
// accepted, the pool is back to size, and a client on a long connection is unaffected.
import t from 'tap';
import { isAlive, waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { AcceptLock } from '../../ibas/accept-lock.js';

t.test('the leader dies holding the accept lock', async (t) => {
  const s = await setupIbas(t, { maxCount: 3 });
  await s.start();
  await waitWorkers(s, 3);
  const client = await TestClient.connect(s.ip, s.port);
  t.equal((await client.call('ibp_test_echo', 'hold')).body.toString(), 'hold');

  const lock = AcceptLock.open(s.lockKey);
  const leader = await waitFor('a LISTEN worker', () => s.slots().find((w) => w.state === 'LISTEN'));
  t.equal(lock.value(), 0, 'the leader holds the lock');
  process.kill(leader.pid, 'SIGKILL');
  await waitFor('the leader to die', () => !isAlive(leader.pid), 5000);

  const next = await waitFor('another worker to lead', () => s.slots().find((w) => w.state === 'LISTEN' && w.pid !== leader.pid), 10_000);
  t.not(next.pid, leader.pid, `worker ${next.pid} took the lock the dead leader held`);
  for (let i = 0; i < 10; i++) t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', `after ${i}`)).body.toString(), `after ${i}`, `connection ${i} accepted after the kill`);
  t.equal((await client.call('ibp_test_echo', 'still here')).body.toString(), 'still here', 'the long connection is unaffected');

  await waitFor('the pool to be back to 3', () => {
    const live = s.slots();
    return live.length === 3 && !live.some((w) => w.pid === leader.pid) && live.every((w) => w.state !== 'STARTING');
  }, 20_000);
  t.pass('pool back to size');
  t.match(s.log('monitor'), new RegExp(`worker exited , pid\\[${leader.pid}\\].*signal\\[SIGKILL\\].*state\\[LISTEN\\]`), 'the exit is logged with the LISTEN state it died in');
  client.close();
  await waitFor('the lock to settle with an idle pool', () => s.slots().filter((w) => w.state === 'LISTEN').length === 1, 10_000);
  t.equal(lock.value(), 0, 'exactly one live leader holds the lock');
  t.equal((await s.stop()).code, 0);
});

// kill -9 of an idle worker: the manager logs the signal and replaces it at once; the pool is back
// to size; a client on another worker's long connection never notices.
import t from 'tap';
import { isAlive, waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';

t.test('kill -9 of an idle worker', async (t) => {
  const s = await setupIbas(t, { maxCount: 3 });
  await s.start();
  await waitWorkers(s, 3);

  // a client loop on a long connection, running through the kill
  const client = await TestClient.connect(s.ip, s.port);
  t.equal((await client.call('ibp_test_echo', 'first')).body.toString(), 'first');
  let running = true;
  let ok = 0;
  let failed = 0;
  const loop = (async () => {
    while (running) {
      try {
        const r = await client.call('ibp_test_echo', `loop ${ok}`);
        if (r.rc === 0 && r.body.toString() === `loop ${ok}`) ok++;
        else failed++;
      } catch {
        failed++;
        return;
      }
    }
  })();

  // the worker holding the connection is reading, running or between calls at any instant
  const serving = await waitFor('the worker holding the client\'s connection', () => s.slots().find((w) => w.state === 'WORKING' || w.state === 'KEEPALIVE' || w.state === 'READING'));
  t.ok(serving, 'one worker holds the client\'s connection');
  const victim = await waitFor('an IDLE worker', () => s.slots().find((w) => w.state === 'IDLE' && w.pid !== serving.pid));
  process.kill(victim.pid, 'SIGKILL');
  await waitFor('the victim to die', () => !isAlive(victim.pid), 5000);

  const after = await waitFor('the pool to be back to 3 with a new worker', () => {
    const live = s.slots();
    return live.length === 3 && !live.some((w) => w.pid === victim.pid) && live.every((w) => w.state !== 'STARTING') ? live : undefined;
  }, 20_000);
  t.equal(after.length, 3, 'pool back to size');
  t.match(s.log('monitor'), new RegExp(`worker exited , pid\\[${victim.pid}\\] slot\\[${victim.index}\\] signal\\[SIGKILL\\].* , replacing`), 'the exit and its signal are logged');
  t.match(s.log('event'), new RegExp(`pid\\[${victim.pid}\\].*SIGKILL`), 'and reach the event log');

  for (let i = 0; i < 5; i++) t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', `new ${i}`)).body.toString(), `new ${i}`, `new connection ${i} served`);
  running = false;
  await loop;
  client.close();
  t.equal(failed, 0, `the long-connection client saw no failure (${ok} transactions through the kill)`);
  t.ok(ok > 0);
  t.ok(isAlive(serving.pid), 'the worker serving the client is untouched');
});

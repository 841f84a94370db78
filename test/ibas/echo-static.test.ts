// STATIC_WORKERPOOL: many echo transactions on long and short connections come back right, and
// under concurrent clients every worker of the pool serves some (leader-follower accept).
import t from 'tap';
import { assertStoppedClean, echoLoop, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

t.test('static pool echo, long and short connections, all workers serve', async (t) => {
  const s = await setupIbas(t, { mode: 'STATIC_WORKERPOOL', maxCount: 3 });
  await s.start();
  const workers = await waitWorkers(s, 3);
  t.equal(workers.length, 3, 'max_count workers');
  t.equal(workers.filter((w) => w.state === 'LISTEN').length <= 1, true, 'at most one worker holds the accept lock');

  t.equal(await echoLoop(s, 300), 300, '300 echoes on one long connection');

  let shortOk = 0;
  for (let i = 0; i < 40; i++) {
    const r = await callOnce(s.ip, s.port, 'ibp_test_echo', `short ${i}`);
    if (r.rc === 0 && r.body.toString() === `short ${i}`) shortOk++;
  }
  t.equal(shortOk, 40, '40 echoes on short connections');

  // concurrent clients, short connections: leader-follower hands the accept around
  const results = await Promise.all(Array.from({ length: 6 }, async (_, c) => {
    let ok = 0;
    for (let i = 0; i < 25; i++) {
      const r = await callOnce(s.ip, s.port, 'ibp_test_echo', `c${c}-${i}`);
      if (r.rc === 0 && r.body.toString() === `c${c}-${i}`) ok++;
    }
    return ok;
  }));
  t.same(results, [25, 25, 25, 25, 25, 25], 'every concurrent client got all its echoes');
  const after = s.slots();
  t.equal(after.length, 3);
  for (const w of after) t.ok(w.count > 0, `worker ${w.index} (pid ${w.pid}) served ${w.count} transactions`);
  t.equal(after.reduce((n, w) => n + w.count, 0), 300 + 40 + 150, 'the scoreboard counted every transaction');

  const stop = await s.stop();
  t.equal(stop.code, 0, stop.stderr);
  await assertStoppedClean(t, s);
});

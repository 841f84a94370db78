// Three-tier timeouts against a real ibas with a client loop running beside the slow calls:
//   tier 1  ibp_test_slow sleeps past timeout2 → the worker's alarm (the native watchdog thread of
//           lib/native/ibp_crash.c) answers the client and the worker dies by SIGALRM
//   tier 2  ibp_test_noalarm ignores SIGALRM and sets SIGTERM to its default ("dflterm") → the
//           manager's SIGTERM at 1.5 × timeout2 ends it; the manager answers the client
//   tier 3  ibp_test_noalarm ignores SIGALRM, Node catches SIGTERM → SIGKILL at 2 × timeout2
// Each: the client gets RC.APP_TIMEOUT naming the tier, the log says which tier acted, the pool
// is back to size, the loop beside it never failed.
import t from 'tap';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient, callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';
import { RC } from '../../lib/protocol/result-codes.js';

t.test('three tiers, each logged, each answered', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    apps: [
      { app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 0.5, timeout2: 0.6 },
      { app: 'ibp_test_noalarm', bin: 'ibp_test_noalarm.so', timeout: 0.5, timeout2: 0.6 },
    ],
    patch: (c) => { c.monitor.tick_ms = 50; },
  });
  await s.start();
  await waitWorkers(s, 2);
  const loop = startLoop(s.ip, s.port, { loops: 1, long: true });

  const cases: { req: [string, string]; tier: 1 | 2 | 3; signal: string }[] = [
    { req: ['ibp_test_slow', '5000'], tier: 1, signal: 'SIGALRM' },
    { req: ['ibp_test_noalarm', '5000 dflterm'], tier: 2, signal: 'SIGTERM' },
    { req: ['ibp_test_noalarm', '5000'], tier: 3, signal: 'SIGKILL' },
  ];
  for (const c of cases) {
    const before = s.slots().map((w) => w.pid);
    const t0 = Date.now();
    const r = await callOnce(s.ip, s.port, c.req[0], c.req[1], { timeoutMs: 10_000 });
    const took = Date.now() - t0;
    t.equal(r.rc, RC.APP_TIMEOUT, `${c.req[0]} ${c.req[1]}: the client gets APP_TIMEOUT after ${took} ms`);
    t.match(r.message, new RegExp(`tier ${c.tier}`), `the answer names tier ${c.tier}: ${r.message}`);
    const mon = await waitFor(`tier ${c.tier} in the monitor log`, () => {
      const m = s.log('monitor');
      return new RegExp(`transaction timeout tier ${c.tier} , pid\\[\\d+\\] slot\\[\\d+\\] app\\[${c.req[0]}\\]`).test(m) && new RegExp(`signal\\[${c.signal}\\]`).test(m) ? m : undefined;
    }, 10_000);
    t.ok(mon, `the monitor log says tier ${c.tier} acted and the worker died by ${c.signal}`);
    const t1 = Date.now();
    const after = await waitWorkers(s, 2, 10_000);
    t.ok(after.some((w) => !before.includes(w.pid)), `a replacement worker serves (${Date.now() - t1} ms after the answer)`);
  }
  t.match(s.log('event'), /transaction timeout tier 1[\s\S]*transaction timeout tier 2[\s\S]*transaction timeout tier 3/, 'the event log has all three tiers');
  t.notMatch(s.log('monitor'), /transaction timeout tier [23] , pid\[\d+\] slot\[\d+\] app\[ibp_test_slow\]/, 'tier 1 ended the slow app before tier 2 could act');
  const workerLogs = [0, 1, 2, 3].map((n) => s.log(n)).join('\n');
  t.match(workerLogs, /ibp_guard \| tier 1 , SIGALRM: the transaction ran past timeout2 , timeout answer written to the client/, 'the worker log has the tier-1 line from the native handler');

  const st = await loop.stop();
  t.equal(st.failed, 0, `the client loop beside it never failed (${st.ok} ok) ${st.reasons.slice(0, 3).join(' | ')}`);
  t.ok(st.ok > 0, 'the loop made progress');

  // a quick transaction under an armed timer is untouched (alarm cleared after each call)
  const quick = await callOnce(s.ip, s.port, 'ibp_test_slow', '10');
  t.equal(quick.body.toString(), 'slept:10', 'a call under timeout2 answers normally');

  // the watchdog is not woken by an arm whose deadline is later than the one it sleeps on: after a
  // stream of quick calls on one connection, the slow one is still ended by tier 1, on time
  const c = await TestClient.connect(s.ip, s.port);
  for (let i = 0; i < 300; i++) {
    const r = await c.call('ibp_test_slow', '0');
    if (r.rc !== RC.OK) t.fail(`quick call ${i}: rc ${r.rc} ${r.message}`);
  }
  const t2 = Date.now();
  const slow = await c.call('ibp_test_slow', '5000', { timeoutMs: 10_000 });
  t.equal(slow.rc, RC.APP_TIMEOUT, `after 300 quick calls on the connection, the slow one gets APP_TIMEOUT after ${Date.now() - t2} ms`);
  t.match(slow.message, /tier 1/, `tier 1 ended it: ${slow.message}`);
  c.close();
  await waitWorkers(s, 2, 10_000);
  t.equal((await s.stop()).code, 0);
});

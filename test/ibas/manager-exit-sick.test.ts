// The exit-code contract, CHILD_SICK: a worker that exits EXIT.CHILD_SICK (here its app ends it
// with _exit(23)) is replaced only after a back-off that doubles with each consecutive sick exit
// (ibas/exit-class.ts SICK_BACKOFF); the exit is logged as class sick; the server keeps serving.
import t from 'tap';
import { EXIT } from '../../lib/exit-codes.js';
import { SICK_BACKOFF, sickDelayMs } from '../../ibas/exit-class.js';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

interface Line { time: number; msg: string }
const lines = (text: string): Line[] => text.split('\n').filter(Boolean).map((l) => {
  try {
    const j = JSON.parse(l) as { time: string; msg: string };
    return { time: Date.parse(j.time), msg: j.msg };
  } catch {
    return { time: 0, msg: l };
  }
});

t.test('CHILD_SICK: respawning backs off, doubling', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, apps: [{ app: 'ibp_test_exit', bin: 'ibp_test_exit.so' }] });
  await s.start();
  const rounds = 3;
  for (let i = 1; i <= rounds; i++) {
    await waitWorkers(s, 1, 20_000);
    await callOnce(s.ip, s.port, 'ibp_test_exit', String(EXIT.CHILD_SICK), { timeoutMs: 10_000 }).catch((e: Error) => e);
    await waitFor(`sick exit ${i} logged`, () => (s.log('monitor').match(/worker sick , /g) ?? []).length >= i ? true : undefined, 10_000);
  }
  await waitWorkers(s, 1, 20_000);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'still')).body.toString(), 'still', 'the server serves after the back-off');

  const log = lines(s.log('monitor'));
  const sick = log.filter((l) => /class\[sick\] action\[backoff\]/.test(l.msg));
  t.equal(sick.length, rounds, 'every sick exit is logged as class sick, action backoff');
  const delays = log.filter((l) => l.msg.startsWith('worker sick , ')).map((l) => Number(/next spawn in (\d+) ms/.exec(l.msg)?.[1]));
  t.same(delays, [1, 2, 3].map(sickDelayMs), `the delays double: ${delays.join(', ')} ms`);
  t.ok(delays[0] === SICK_BACKOFF.firstMs && delays[2]! > delays[0]!, 'from the first delay up');
  // behaviour, not timing: no spawn happened inside a back-off window
  const spawns = log.filter((l) => l.msg.startsWith('worker spawned'));
  const backoffs = log.filter((l) => l.msg.startsWith('worker sick , '));
  for (const [i, b] of backoffs.entries()) {
    const next = spawns.find((sp) => sp.time >= b.time);
    t.ok(next && next.time - b.time >= delays[i]! - 5, `after sick exit ${i + 1} the next worker was spawned ${next ? next.time - b.time : '∞'} ms later (back-off ${delays[i]} ms)`);
  }
  t.equal((await s.stop()).code, 0);
});

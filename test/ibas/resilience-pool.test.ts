// Worker life under a client loop: recycling after max_process_count (with jitter) loses no
// transaction on long or short connections; a crashing app kills only its worker, leaves the
// signal and a backtrace naming the crashing function in the worker log, answers its client
// APP_CRASH, and the pool is refilled; a worker that cannot boot (app.preload of an app whose
// soinit fails) trips the restart budget: `-a start` fails and the event log has the alert.
import t from 'tap';
import { processesOfHome, waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';
import { RC } from '../../lib/protocol/result-codes.js';

t.test('recycling under a client loop: zero failed transactions', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, maxProcessCount: 15, patch: (c) => { c.mpm.max_process_count_jitter = 5; } });
  await s.start();
  const first = (await waitWorkers(s, 2)).map((w) => w.pid);
  const long = startLoop(s.ip, s.port, { loops: 2, long: true, maxTx: 60 });
  const short = startLoop(s.ip, s.port, { loops: 1, long: false, maxTx: 60 });
  await waitFor('six recycled workers', () => (s.log('monitor').match(/worker exited , pid\[\d+\] slot\[\d+\] code\[0\]/g) ?? []).length >= 6 ? true : undefined, 50_000);
  const [l, sh] = [await long.stop(), await short.stop()];
  t.equal(l.failed + sh.failed, 0, `no failed transaction (long ${l.ok} ok ${l.retried} reconnects, short ${sh.ok} ok) ${[...l.reasons, ...sh.reasons].slice(0, 3).join(' | ')}`);
  const exits = s.log('monitor').match(/worker exited , pid\[\d+\] slot\[\d+\] code\[0\] transactions\[(\d+)\]/g) ?? [];
  const counts = exits.map((e) => Number(/transactions\[(\d+)\]/.exec(e)![1]));
  t.ok(counts.length >= 6, `the monitor log has the ${counts.length} recycled exits waited for`);
  // 15 + jitter 0..5. A request already on the connection when the limit is reached is still
  // served (ibas/connection.ts "Leaving": one last read, then the worker goes): at most one more.
  t.ok(counts.length > 0 && counts.every((n) => n >= 15 && n <= 21), `each recycled worker served max_process_count + jitter (15..20), plus at most the one request already sent: ${counts.join(' ')}`);
  t.notMatch(s.log('monitor'), /signal\[/, 'no worker was killed');
  const now = await waitWorkers(s, 2);
  t.ok(now.every((w) => !first.includes(w.pid)), 'the pool was renewed and is at size');
  t.equal((await s.stop()).code, 0);
});

t.test('a crashing app kills only its worker; backtrace in the worker log', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_crash', bin: 'ibp_test_crash.so' }] });
  await s.start();
  await waitWorkers(s, 2);
  const loop = startLoop(s.ip, s.port, { loops: 1, long: true });
  for (const kind of ['segv', 'fpe']) {
    const r = await callOnce(s.ip, s.port, 'ibp_test_crash', kind, { timeoutMs: 10_000 });
    t.equal(r.rc, RC.APP_CRASH, `${kind}: the client gets APP_CRASH: ${r.message}`);
  }
  const mon = await waitFor('two crashes in the monitor log', () => ((s.log('monitor').match(/worker crashed , pid\[\d+\] slot\[\d+\] signal\[SIG(SEGV|FPE)\] app\[ibp_test_crash\]/g) ?? []).length >= 2 ? s.log('monitor') : undefined), 10_000);
  t.match(mon, /signal\[SIGSEGV\]/, 'the manager logged the SIGSEGV exit');
  t.match(mon, /signal\[SIGFPE\]/, 'and the SIGFPE exit');
  const logs = [0, 1, 2, 3].map((n) => s.log(n)).join('\n');
  t.match(logs, /ibp_crash \| signal , name\[SIGSEGV\]/, 'a worker log has the signal');
  t.match(logs, /ibp_test_crash\.so\(ibp_crash_here\+0x/, 'and a backtrace naming ibp_crash_here');
  t.match(logs, /ibp_test_crash\.so\(ibp_crash_fpe_here\+0x/, 'and one naming ibp_crash_fpe_here');
  await waitWorkers(s, 2, 10_000);
  t.pass('the pool is back to size');
  const st = await loop.stop();
  t.equal(st.failed, 0, `the loop beside the crashes never failed (${st.ok} ok)`);
  t.equal((await s.stop()).code, 0);
});

t.test('restart budget: workers that cannot boot stop the respawning; start fails', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    apps: [{ app: 'ibp_test_bootfail', bin: 'ibp_test_bootfail.so' }],
    patch: (c) => { c.app.preload = ['ibp_test_bootfail']; c.monitor.max_restarts = 4; c.monitor.restart_window = 30; },
  });
  const r = await s.ibas(['-f', s.conf, '-a', 'start']);
  t.not(r.code, 0, `-a start fails: ${(r.stderr + r.stdout).trim().split('\n').pop()}`);
  t.match(r.stderr + r.stdout, /workers die at start/, 'naming why');
  const ev = s.log('event');
  t.match(ev, /ALERT restart budget exhausted , 4 workers died at start/, 'the event log has the alert');
  const spawned = (s.log('monitor').match(/worker spawned/g) ?? []).length;
  // the budget counts 4 deaths at start: at least 4 workers were spawned and died, at most one more
  t.ok(spawned >= 4 && spawned <= 5, `respawning stopped after the budget (${spawned} spawned, 4..5 expected)`);
  t.match(s.log(0) + s.log(1), /app preload failed , app\[ibp_test_bootfail\]/, 'the worker log says why it could not boot');
  await waitFor('no process left', () => processesOfHome(s.home).length === 0 ? true : undefined, 10_000);
  t.pass('no process of the home is left');
});

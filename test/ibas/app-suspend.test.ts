// The crash-loop brake (ibas/suspensions.ts): an app that kills its worker on every call is
// suspended after monitor.app_max_crashes crashes within monitor.app_crash_window, while an echo
// app keeps answering on the same pool. A suspended app gets a SAFE APP_SUSPENDED in the
// pre-answer without being loaded (binary) or a 503 (HTTP); the suspension is in the event log
// and in `ibas -s status`; it ends on `ibas -a resume_app --app A` and when the package changes.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';
import { APPS_DIR, setupIbas, waitWorkers, type IbasHome } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';

const CRASH = 'ibp_test_crash';

async function crashUntilSuspended(t: Test, s: IbasHome, max: number): Promise<void> {
  for (let i = 0; i < max; i++) {
    await waitWorkers(s, 2, 20_000);
    const r = await callOnce(s.ip, s.port, CRASH, 'segv', { timeoutMs: 10_000 });
    t.equal(r.rc, RC.APP_CRASH, `crash ${i + 1}: APP_CRASH`);
  }
  await waitFor('the suspension in -s status', async () => /app suspended , app\[ibp_test_crash\]/.test((await s.ibas(['-f', s.conf, '-s', 'status'])).stdout) ? true : undefined, 15_000);
}

function httpCall(s: IbasHome, app: string, body: string): Promise<{ status: number; rc: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: s.ip, port: s.port, method: 'POST', path: `/ibp/${app}`, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, rc: String(res.headers['x-ibp-rc'] ?? '') }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('http timeout')));
    req.end(body);
  });
}

t.test('a crash-every-call app is suspended; the echo app keeps answering', async (t) => {
  const max = 2;
  const s = await setupIbas(t, {
    maxCount: 2,
    apps: [{ app: CRASH, bin: 'ibp_test_crash.so' }],
    patch: (c) => { c.monitor.app_max_crashes = max; c.monitor.app_crash_window = 60; },
  });
  await s.start();
  const loop = startLoop(s.ip, s.port, { loops: 1, long: false });

  await crashUntilSuspended(t, s, max);
  const st = await s.ibas(['-f', s.conf, '-s', 'status']);
  t.match(st.stdout, new RegExp(`app suspended , app\\[${CRASH}\\] bin\\[ibp_test_crash.so\\] crashes\\[${max}\\] within\\[60s\\]`), 'status lists the suspension');
  const json = JSON.parse((await s.ibas(['-f', s.conf, '-s', 'status', '--json'])).stdout) as { suspended: { app: string }[] };
  t.same(json.suspended.map((x) => x.app), [CRASH], 'and so does --json');
  t.match(s.log('event'), new RegExp(`ALERT app suspended , app\\[${CRASH}\\] crashes\\[${max}\\]`), 'the event log has the suspension');

  const deaths = (s.log('monitor').match(/worker crashed/g) ?? []).length;
  for (let i = 0; i < 5; i++) {
    const r = await callOnce(s.ip, s.port, CRASH, 'segv', { timeoutMs: 10_000, waitPre: true });
    t.equal(r.preRc, RC.APP_SUSPENDED, `call ${i + 1} while suspended: APP_SUSPENDED in the pre-answer (SAFE: nothing ran): ${r.message}`);
  }
  t.match((await callOnce(s.ip, s.port, CRASH, 'segv')).message, /suspended on this server.*resume_app/, 'the message says what to do');
  const h = await httpCall(s, CRASH, 'segv');
  t.equal(h.status, 503, 'HTTP: 503');
  t.equal(h.rc, String(RC.APP_SUSPENDED), 'with X-Ibp-Rc APP_SUSPENDED');
  t.equal((s.log('monitor').match(/worker crashed/g) ?? []).length, deaths, 'no worker died while it was suspended');
  const echo = await callOnce(s.ip, s.port, 'ibp_test_echo', 'alive');
  t.equal(echo.body.toString(), 'alive', 'the echo app answers on the same pool');

  // the operator lifts it
  const resumed = await s.ibas(['-f', s.conf, '-a', 'resume_app', '--app', CRASH]);
  t.equal(resumed.code, 0, resumed.stderr);
  t.equal((await callOnce(s.ip, s.port, CRASH, 'segv', { timeoutMs: 10_000 })).rc, RC.APP_CRASH, 'after resume_app the app runs (and crashes) again');
  await waitFor('the manager noticed the resume', () => /app resumed , app\[ibp_test_crash\] reason\[resume_app by the operator\]/.test(s.log('monitor')) ? true : undefined, 10_000);
  const again = await s.ibas(['-f', s.conf, '-a', 'resume_app', '--app', CRASH]);
  t.not(again.code, 0, `resume_app of an app that is not suspended fails: ${again.stderr.trim()}`);

  // suspended again (the count started over), then its package changes: it runs the new code
  await crashUntilSuspended(t, s, max);
  const pkg = path.join(s.home, 'so', 'ibp_test_crash.so');
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_echo.so'), `${pkg}.new`);
  fs.renameSync(`${pkg}.new`, pkg);
  await waitFor('the suspension to end on the package change', () => /app resumed , app\[ibp_test_crash\] reason\[package ibp_test_crash.so changed\]/.test(s.log('monitor')) ? true : undefined, 15_000);
  const fixed = await callOnce(s.ip, s.port, CRASH, 'fixed');
  t.equal(fixed.rc, RC.OK, 'the new package runs');
  t.equal(fixed.body.toString(), 'fixed');

  const l = await loop.stop();
  t.equal(l.failed, 0, `the echo loop beside it never failed (${l.ok} ok)`);
  t.equal((await s.stop()).code, 0);
});

// `ibas -a stop` while a USR2 new generation is still starting (ibas/upgrade.ts STARTING: the pid
// file is `.oldbin`, the new manager has not reported ready): the stop finds the serving manager
// through `.oldbin`, the starting generation is killed, and nothing is left — no process, no
// scoreboard, no pid file, no `.oldbin`, no upgrade record.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { parseJsonText } from '../../lib/config/load.js';
import { waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';

t.test('stop during the upgrade start stops both generations', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, apps: [{ app: 'ibp_test_slowinit', bin: 'ibp_test_slowinit.so' }] });
  const oldPid = await s.start();
  await waitWorkers(s, 1);
  // the new generation reads ibas.conf at start: its worker preloads an app whose soinit takes 6 s
  const conf = parseJsonText(fs.readFileSync(s.conf, 'utf8'), s.conf) as Record<string, any>;
  conf.app.preload = ['ibp_test_slowinit'];
  fs.writeFileSync(s.conf, JSON.stringify(conf, null, 2));
  process.kill(oldPid, 'SIGUSR2');
  await waitFor('the new generation spawned', () => /upgrade: generation 2 pid\[\d+\] spawned/.test(s.log('monitor')) ? true : undefined, 15_000);
  const newPid = Number(/upgrade: generation 2 pid\[(\d+)\] spawned/.exec(s.log('monitor'))![1]);
  const stop = await s.stop();
  t.equal(stop.code, 0, `-a stop succeeds during the upgrade start: ${stop.stdout.trim()} ${stop.stderr.trim()}`);
  t.match(stop.stdout, new RegExp(`ibas stop ok , pid\\[${oldPid}\\]`), 'it stopped the serving (old) manager');
  t.match(s.log('monitor'), /upgrade rolled back , generation 2 pid\[\d+\] failed: the server is stopping/, 'the starting generation was rolled back');
  await waitFor('the new generation gone', () => { try { process.kill(newPid, 0); return undefined; } catch { return true; } }, 10_000);
  t.pass(`the starting generation (pid ${newPid}) is gone`);
  await assertStoppedClean(t, s);
  t.notOk(fs.existsSync(path.join(s.home, 'run', 'ibas.pid.oldbin')), 'no .oldbin');
  t.notOk(fs.existsSync(path.join(s.home, 'run', 'ibas.upgrade')), 'no upgrade record');
});

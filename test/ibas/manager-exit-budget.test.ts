// The exit-code contract, restart budget after start: a server whose workers stop booting (the
// preloaded app's package is replaced by one whose soinit fails, then the workers are killed)
// exhausts monitor.max_restarts; every such exit is logged as class boot_error, and the manager
// halts and EXITS NON-ZERO (EXIT.CRASH_LOOP) instead of 0.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { EXIT } from '../../lib/exit-codes.js';
import { processesOfHome, waitFor } from '../helpers/procs.js';
import { APPS_DIR, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startAttachedManager, within } from './helpers/manager.js';

t.test('restart budget exhausted after start: the manager halts with EXIT.CRASH_LOOP', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    apps: [{ app: 'ibp_test_swap', bin: 'ibp_test_swap.so' }],
    patch: (c) => { c.app.preload = ['ibp_test_swap']; c.monitor.max_restarts = 3; c.monitor.restart_window = 60; },
  });
  const pkg = path.join(s.home, 'so', 'ibp_test_swap.so');
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_echo.so'), pkg);
  const m = startAttachedManager(t, s);
  await m.ready;
  const workers = await waitWorkers(s, 2);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_swap', 'ok')).body.toString(), 'ok', 'the preloaded app serves');

  // from now on no worker can boot: its preload fails (soinit returns 3 → exit APP_LOAD)
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_bootfail.so'), `${pkg}.new`);
  fs.renameSync(`${pkg}.new`, pkg);
  for (const w of workers) process.kill(w.pid, 'SIGKILL');

  const exit = await within(m.exited, 45_000);
  t.ok(exit, 'the manager exits by itself once no worker can boot');
  t.equal(exit?.code, EXIT.CRASH_LOOP, `the manager exits EXIT.CRASH_LOOP (${EXIT.CRASH_LOOP}), not 0 (got ${exit?.code ?? exit?.signal})`);
  const mon = s.log('monitor');
  t.match(mon, /worker exited , pid\[\d+\] slot\[\d+\] signal\[SIGKILL\] [^\n]*class\[crashed\] action\[respawn\]/, 'the kills are logged as class crashed');
  const boots = (mon.match(/code\[20\] [^\n]*class\[boot_error\] action\[budget\]/g) ?? []).length;
  t.ok(boots >= 3, `each boot failure is logged as class boot_error (${boots})`);
  t.match(s.log('event'), /ALERT restart budget exhausted , 3 workers died at start/, 'the event log has the alert');
  t.match(s.log('event'), /manager halts , reason\[restart budget exhausted/, 'and the halt');
  await waitFor('no process left', () => processesOfHome(s.home).length === 0 ? true : undefined, 10_000);
  t.notOk(fs.existsSync(path.join(s.home, 'run', 'ibas.pid')), 'the pid file is removed');
});

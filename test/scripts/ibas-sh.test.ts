/** ibas.sh against a real ibas in a temporary home: start, status, bbstat, reload_log, restart, stop, restart_graceful. */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { isAlive, readPid } from '../../lib/pidfile.js';
import { freePort, loopbackIp, processesOfHome, reapHome, runTool, waitFor } from '../helpers/procs.js';
import { runScript } from './run-script.js';

const home = t.testdir();
t.teardown(() => reapHome(home));
const ip = loopbackIp();
const sh = (name: string, args: string[], env?: NodeJS.ProcessEnv) => runScript(name, args, { home, env });
const pidOf = (tool: string): number | undefined => readPid(path.join(home, 'run', `${tool}.pid`));

t.test('ibas.sh: start, status, bbstat, reload_log, restart, stop; restart_graceful needs a running ibas', async (t) => {
  const port = await freePort(ip);
  const init = await runTool('ibas', ['-a', 'init', '--ip', ip, '--port', String(port), '--max-count', '2'], { home });
  t.equal(init.code, 0, init.stderr);
  let r = await sh('ibas.sh', ['restart_graceful']);
  t.equal(r.code, 7, 'nothing to upgrade');
  t.match(r.stderr, /ibas is not running .*use start/);
  r = await sh('ibas.sh', ['start']);
  t.equal(r.code, 0, r.stderr);
  const pid = pidOf('ibas')!;
  t.ok(isAlive(pid));
  r = await sh('ibas.sh', ['status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`ibas is running , pid\\[${pid}\\]`));
  r = await sh('ibas.sh', ['bbstat']);
  t.equal(r.code, 0, r.stderr);
  r = await sh('ibas.sh', ['reload_log']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibas SIGUSR1 sent/);
  r = await sh('ibas.sh', ['restart']);
  t.equal(r.code, 0, r.stderr);
  const pid2 = pidOf('ibas')!;
  t.not(pid2, pid);
  t.notOk(isAlive(pid));
  r = await sh('ibas.sh', ['stop']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(isAlive(pid2));
  await waitFor('no process of the home', () => processesOfHome(home).length === 0, 10_000);
  t.pass('nothing left');
});


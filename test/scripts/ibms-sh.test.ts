/** ibms.sh against a real ibms in a temporary home: status, start, show_*, reload_log, restart, stop, kill. */
import t from 'tap';
import path from 'node:path';
import { isAlive, readPid } from '../../lib/pidfile.js';
import { freePort, loopbackIp, processesOfHome, reapHome, runTool, waitFor } from '../helpers/procs.js';
import { runScript } from './run-script.js';

const home = t.testdir();
t.teardown(() => reapHome(home));
const ip = loopbackIp();
const sh = (name: string, args: string[], env?: NodeJS.ProcessEnv) => runScript(name, args, { home, env });
const pidOf = (tool: string): number | undefined => readPid(path.join(home, 'run', `${tool}.pid`));

t.test('ibms.sh: status, start, show, reload_log, restart, stop', async (t) => {
  const port = await freePort(ip);
  const init = await runTool('ibms', ['-a', 'init', '--ip', ip, '--port', String(port)], { home });
  t.equal(init.code, 0, init.stderr);
  let r = await sh('ibms.sh', ['status']);
  t.equal(r.code, 7, 'not running yet: the tool\'s exit code');
  t.match(r.stderr, /ibms is not running/);
  r = await sh('ibms.sh', ['reload_log']);
  t.equal(r.code, 7);
  r = await sh('ibms.sh', ['start']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibms start ok/);
  const pid = pidOf('ibms')!;
  t.ok(isAlive(pid));
  r = await sh('ibms.sh', ['status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`ibms is running.*${pid}`));
  r = await sh('ibms.sh', ['show_nodes']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /NODE/);
  r = await sh('ibms.sh', ['reload_log']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`ibms SIGUSR1 sent , pid\\[${pid}\\]`));
  t.ok(isAlive(pid), 'USR1 does not stop it');
  r = await sh('ibms.sh', ['restart']);
  t.equal(r.code, 0, r.stderr);
  const pid2 = pidOf('ibms')!;
  t.not(pid2, pid, 'a new process');
  t.notOk(isAlive(pid), 'the old one is gone');
  r = await sh('ibms.sh', ['stop']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(isAlive(pid2));
  r = await sh('ibms.sh', ['restart']);
  t.equal(r.code, 0, `restart of a stopped ibms starts it: ${r.stderr}`);
  r = await sh('ibms.sh', ['kill']);
  t.equal(r.code, 0, r.stderr);
  await waitFor('no ibms process of the home', () => processesOfHome(home).length === 0, 10_000);
  r = await sh('ibms.sh', ['status']);
  t.equal(r.code, 7);
});


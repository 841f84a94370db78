/** ibas.sh against a real ibas in a temporary home: start, status, bbstat, reload_log, restart, stop, restart_graceful. */
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

t.test('ibas.sh: start, status, bbstat, reload_log, restart, stop; restart_graceful needs a running ibas', async (t) => {
  const port = await freePort(ip);
  // ibas refuses to start without the agent's ibma.conf (ibas/preflight.ts): init the agent's side first
  const agent = await runTool('ibma', ['-a', 'init', '--node', 'SH_NODE', '--ibms-ip', ip, '--ibms-port', '1', '--credential', 'c'.repeat(32)], { home });
  t.equal(agent.code, 0, agent.stderr);
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
  // restart_graceful = SIGUSR2 to the manager (ibas/upgrade.ts), then wait for the pid file to
  // name the new generation
  r = await sh('ibas.sh', ['restart_graceful'], { IBP_GRACEFUL_TIMEOUT: '60' });
  t.equal(r.code, 0, r.stderr);
  const pid3 = pidOf('ibas')!;
  t.match(r.stdout, new RegExp(`ibas restart_graceful ok , old pid\\[${pid2}\\] new pid\\[${pid3}\\]`));
  t.ok(isAlive(pid3), 'the new generation runs');
  await waitFor('the old generation to drain and exit', () => !isAlive(pid2), 30_000);
  const serving = pid3;
  r = await sh('ibas.sh', ['stop']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(isAlive(serving));
  await waitFor('no process of the home', () => processesOfHome(home).length === 0, 10_000);
  t.pass('nothing left');
});


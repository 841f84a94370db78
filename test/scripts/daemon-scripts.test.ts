/**
 * The daemon scripts' shared behaviour (usage, unknown verbs), and ibcmd.sh and ibma.sh against a
 * temporary home. ibms.sh and ibas.sh have their own files (ibms-sh, ibas-sh).
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { readPid } from '../../lib/pidfile.js';
import { freePort, loopbackIp, processesOfHome, reapHome, runTool } from '../helpers/procs.js';
import { runScript } from './run-script.js';

const home = t.testdir();
t.teardown(() => reapHome(home));
const ip = loopbackIp();
const sh = (name: string, args: string[], env?: NodeJS.ProcessEnv) => runScript(name, args, { home, env });
const pidOf = (tool: string): number | undefined => readPid(path.join(home, 'run', `${tool}.pid`));

t.test('no verb or an unknown verb prints the usage and exits 2', async (t) => {
  const verbs: Record<string, RegExp> = {
    'ibms.sh': /USAGE : ibms\.sh \[ status \| start \| stop \| kill \| restart \| restart_graceful \| reload_log \| check \| show_nodes/,
    'ibma.sh': /USAGE : ibma\.sh \[ status \| start \| start_cleanly \| stop \| stop_cleanly \| kill \| restart \| restart_graceful/,
    'ibas.sh': /USAGE : ibas\.sh \[ status \| start \| stop \| kill \| restart \| restart_graceful \| reload_log \| check \| bbstat \| bbdetail \]/,
    'ibcmd.sh': /USAGE : ibcmd\.sh \[ status \| start \| stop \| kill \| restart \| restart_graceful \| reload_log \| check \]/,
  };
  for (const [s, usage] of Object.entries(verbs)) {
    let r = await sh(s, []);
    t.equal(r.code, 2, `${s} without a verb`);
    t.match(r.stderr, usage);
    r = await sh(s, ['explode']);
    t.equal(r.code, 2);
    t.match(r.stderr, /unknown verb "explode"/);
    r = await sh(s, ['status', 'extra']);
    t.equal(r.code, 2, 'one verb at a time');
  }
});

t.test('ibcmd.sh: start, status, restart_graceful (stop + start), check, stop', async (t) => {
  const port = await freePort(ip);
  t.equal((await runTool('ibcmd', ['-a', 'init', '--ip', ip, '--port', String(port)], { home })).code, 0);
  let r = await sh('ibcmd.sh', ['check']);
  t.equal(r.code, 0, r.stderr);
  r = await sh('ibcmd.sh', ['start']);
  t.equal(r.code, 0, r.stderr);
  const pid = pidOf('ibcmd')!;
  r = await sh('ibcmd.sh', ['status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`│ ${pid} `));
  r = await sh('ibcmd.sh', ['restart_graceful']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibcmd stop ok[\s\S]*ibcmd start ok/);
  t.not(pidOf('ibcmd'), pid);
  r = await sh('ibcmd.sh', ['stop']);
  t.equal(r.code, 0, r.stderr);
  t.same(processesOfHome(home), []);
});

t.test('ibma.sh passes the tool\'s answers through', async (t) => {
  const r = await sh('ibma.sh', ['this_node']);
  t.equal(r.code, 3, 'no ibma.conf in this home');
  t.match(r.stderr, /ibma\.conf not found/);
  t.notOk(fs.existsSync(path.join(home, 'run', 'ibma.pid')));
});

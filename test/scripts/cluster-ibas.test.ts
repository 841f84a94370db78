/**
 * ibas_cluster.sh driving real ibas servers on two loopback "hosts", each through its own ibcmd
 * agent and home: ALL start, ALL status, one node stopped, ALL stop; nothing left behind.
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive, readPid } from '../../lib/pidfile.js';
import { freePort, processesOfHome, runTool, waitFor } from '../helpers/procs.js';
import { makeAgentHome, type AgentHome } from '../ibcmd/agent-home.js';
import { resultLines, runScript } from './run-script.js';

const root = t.testdir({ a: {}, b: {}, admin: { etc: {}, keys: {} } });
const a = await makeAgentHome(t, { home: path.join(root, 'a'), start: false });
const b = await makeAgentHome(t, { home: path.join(root, 'b'), start: false });
const admin = path.join(root, 'admin');
fs.copyFileSync(a.credFile, b.credFile);
fs.copyFileSync(a.credFile, path.join(admin, 'keys', 'ibcmd.credential'));
for (const h of [a, b]) {
  const ibasPort = await freePort(h.ip);
  // ibas refuses to start without the agent's ibma.conf (ibas/preflight.ts): init the agent's side first
  const agent = await runTool('ibma', ['-a', 'init', '--node', 'SH_NODE', '--ibms-ip', h.ip, '--ibms-port', '1', '--credential', 'c'.repeat(32)], { home: h.home });
  if (agent.code !== 0) throw new Error(`ibma -a init: ${agent.stderr}`);
  const init = await runTool('ibas', ['-a', 'init', '--ip', h.ip, '--port', String(ibasPort), '--max-count', '2'], { home: h.home });
  if (init.code !== 0) throw new Error(`ibas -a init: ${init.stderr}`);
  const r = await h.ibcmd(['-a', 'start']);
  if (r.code !== 0) throw new Error(`ibcmd -a start: ${r.stderr}`);
}
const user = os.userInfo().username;
fs.writeFileSync(path.join(admin, 'etc', 'ibp_cluster.conf'), `ECIF ${a.ip} ${user} ${a.port}\nCORE ${b.ip} ${user} ${b.port}\n`);
const cluster = (args: string[]) => runScript('ibas_cluster.sh', args, { home: admin, env: { IBP_CLUSTER_VERBOSE: '1' } });
const key = (node: string, h: AgentHome): string => `${node} ${h.ip}:${h.port}`;
const ibasPid = (h: AgentHome): number | undefined => readPid(path.join(h.home, 'run', 'ibas.pid'));

t.test('ALL start, then ALL status: every host runs its own ibas', async (t) => {
  let r = await cluster(['ALL', 'start']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  let lines = resultLines(r.stdout);
  t.match(lines.get(key('ECIF', a)), { status: 'OK', last: new RegExp(`ibas start ok .*listen\\[${a.ip}:`) });
  t.match(lines.get(key('CORE', b)), { status: 'OK', last: new RegExp(`ibas start ok .*listen\\[${b.ip}:`) });
  for (const h of [a, b]) t.ok(isAlive(ibasPid(h)!), `ibas of ${h.home} runs`);
  r = await cluster(['ALL', 'status']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  lines = resultLines(r.stdout);
  t.equal(lines.size, 2);
  for (const [node, h] of [['ECIF', a], ['CORE', b]] as const) {
    // the summary is ibas's own line, not the last row of the status table below it
    t.match(lines.get(key(node, h)), { status: 'OK', last: new RegExp(`^ibas is running , pid\\[${ibasPid(h)}\\] .*listen\\[${h.ip}:`) }, `${node} status OK`);
  }
  t.notMatch(r.stdout, /\uFFFD/, 'no character cut in two');
});

t.test('one node stopped: its line fails and so does the exit status', async (t) => {
  const corePid = ibasPid(b)!;
  let r = await cluster(['CORE', 'stop']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(resultLines(r.stdout).get(key('CORE', b)), { status: 'OK', last: /ibas stop ok/ });
  t.notOk(isAlive(corePid), 'CORE\'s ibas stopped');
  t.ok(isAlive(ibasPid(a)!), 'ECIF\'s ibas untouched');
  r = await cluster(['ALL', 'status']);
  t.equal(r.code, 1, 'a host failed');
  const lines = resultLines(r.stdout);
  t.equal(lines.get(key('ECIF', a))?.status, 'OK');
  t.match(lines.get(key('CORE', b)), { status: 'FAILED(7)', last: /ibas is not running/ });
});

t.test('ALL stop leaves no ibas behind', async (t) => {
  const ecifPid = ibasPid(a)!;
  const r = await cluster(['ECIF', 'stop']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.notOk(isAlive(ecifPid));
  for (const h of [a, b]) {
    await waitFor(`only the ibcmd agent left in ${h.home}`, () => processesOfHome(h.home).every((p) => p === h.pid()), 10_000);
  }
  t.pass('only the agents are left');
});

/**
 * The registry goes away: ibms killed (SIGKILL, monitor and worker) → the agent and its readers keep
 * working; the agent restarted while ibms is down serves its cached config; when ibms comes back
 * (a new epoch: it restarted) the agent catches up, and a later change reaches the readers.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { loopbackIp, segmentsOfHome, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { makeIbms, type IbmsHome } from './ibms-home.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const ip = loopbackIp();
let reg: IbmsHome;
let agent: AgentHome;
let space: ConfigSpace;

interface Status { running: boolean; ibms?: { link: string }; held?: { version: number; epoch: string; source: string }; space?: { generation: number } }
async function status(): Promise<Status> {
  return JSON.parse((await agent.ibma(['-s', 'status', '--json'])).stdout) as Status;
}
/** The agent's state file (what `-s status` reads), for polling without spawning a command each time. */
function state(): { ibms?: { link: string }; held?: { version: number; epoch: string; source: string } } {
  try {
    return JSON.parse(fs.readFileSync(path.join(agent.home, 'run', 'ibma_CLI.state.json'), 'utf8'));
  } catch {
    return {};
  }
}

t.before(async () => {
  const root = t.testdir();
  reg = await makeIbms(t, ip, root);
  reg.writeData({
    nodes: [
      { node: 'SRV', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18101 }], kvs: { mode: 'one' } },
      { node: 'CLI', invalid: 0, hosts: [], kvs: {} },
    ],
    apps: [{ app: 'TX1', desc: 'tx', bin: 'tx1.so', timeout: 3, timeout2: 0, invalid: 0, server_node: 'SRV' }],
    projects: [{ project: 'p', server_nodes: ['SRV'], client_nodes: ['CLI'], apps: ['TX1'] }],
  });
  await reg.start();
  agent = await makeAgentHome(t, { root, node: 'CLI', ibmsIp: ip, ibmsPort: reg.port, credential: await reg.credential('CLI') });
  const r = await agent.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  space = await openSpace(t, agent.indexKey);
});

t.test('ibms killed: the agent and the readers keep working', async (t) => {
  t.equal(space.kv('SRV', 'mode'), 'one');
  await reg.ibms(['-a', 'save_config']);
  await reg.crash();
  await waitFor('the agent to notice', () => state().ibms?.link === 'unreachable', 10_000);
  const st = await status();
  t.equal(st.running, true, 'the agent is still running');
  t.equal(st.held?.version !== undefined, true);
  t.equal(space.checkSwitch(), false, 'nothing changed for the reader');
  t.equal(space.kv('SRV', 'mode'), 'one', 'the reader still reads the config');
  t.equal(space.app('TX1')?.serverNode, 'SRV');
  t.ok(agent.logLines().some((l) => l.level === 'warn' && /^ibms unreachable , attempt\[1\]/.test(l.msg)), 'a clear log line');
  const shown = await agent.ibma(['-s', 'apps', '--json']);
  t.equal(shown.code, 0);
  t.same((JSON.parse(shown.stdout) as { app: string }[]).map((a) => a.app), ['TX1'], 'ibma -s apps works without ibms');
});

t.test('the agent restarted while ibms is down serves its cached config', async (t) => {
  space.close();
  const stopped = await agent.ibma(['-a', 'stop_cleanly']);
  t.equal(stopped.code, 0, stopped.stderr);
  t.same(await segmentsOfHome(agent.home), [], 'the space is gone');
  const started = Date.now();
  const r = await agent.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  t.pass(`started in ${Date.now() - started} ms with ibms down`);
  space = await openSpace(top, agent.indexKey, 2000);
  t.equal(space.kv('SRV', 'mode'), 'one', 'the cached config is in the space');
  t.equal(space.header().thisNode, 'CLI');
  const st = await status();
  t.equal(st.held?.source, 'cache');
  t.match(st.ibms?.link, /starting|unreachable/);
  t.ok(agent.logLines().some((l) => /^config published , source\[cache\]/.test(l.msg)));
});

t.test('ibms back: the agent reconnects, resyncs the new epoch, and follows changes again', async (t) => {
  const before = state();
  await reg.start();
  await waitFor('the agent connected with the new epoch', () => {
    const st = state();
    return st.ibms?.link === 'connected' && st.held?.source === 'ibms' && st.held.epoch !== before.held?.epoch;
  }, 15_000);
  t.ok(agent.logLines().some((l) => /^registry epoch changed/.test(l.msg)), 'the epoch change was logged (full resync)');
  await reg.ibms(['-a', 'set_node_kv', '--node', 'SRV', '--key', 'mode', '--value', 'two']);
  await reg.ibms(['-a', 'distribute_config']);
  await waitFor('the change in the reader', () => {
    space.checkSwitch();
    return space.kv('SRV', 'mode') === 'two';
  }, 5000);
  t.pass('the change made after ibms came back reached the reader');
  space.close();
  const r = await agent.ibma(['-a', 'stop_cleanly']);
  t.equal(r.code, 0, r.stderr);
  t.same(await segmentsOfHome(agent.home), [], 'nothing left of the home');
});

/** The real daemon (1/2): usage, check, start/status, monitor restarts a dead worker, stop leaves nothing. */
import fs from 'node:fs';
import t from 'tap';
import { isAlive, processesOfHome, runTool, waitFor } from '../helpers/procs.js';
import { ibmsPids, makeDaemon } from './daemon-fixture.js';
import { SAMPLE } from './fixture.js';

t.test('usage and argument errors', async (t) => {
  const home = t.testdir();
  const none = await runTool('ibms', [], { home });
  t.equal(none.code, 2, 'no arguments: usage, exit 2');
  t.match(none.stderr, /Usage: ibms/);
  t.match(none.stderr, /-a add_node_host \| remove_node_host --node N --ip IP --port P/, 'IBP usage lines');
  const badAction = await runTool('ibms', ['-a', 'explode'], { home });
  t.equal(badAction.code, 2);
  t.match(badAction.stderr, /bad value for -a: unknown action "explode"/);
  const badShow = await runTool('ibms', ['-s', 'everything'], { home });
  t.equal(badShow.code, 2);
  t.match(badShow.stderr, /bad value for -s/);
  const badOpt = await runTool('ibms', ['--frobnicate'], { home });
  t.equal(badOpt.code, 2);
  t.match(badOpt.stderr, /unknown option '--frobnicate'/);
  const badPort = await runTool('ibms', ['-a', 'init', '--port', 'x1'], { home });
  t.equal(badPort.code, 2);
  t.match(badPort.stderr, /bad value for --port/);
  const missing = await runTool('ibms', ['-a', 'add_node'], { home });
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--node: is required for -a add_node/);
  const noConf = await runTool('ibms', ['-a', 'start'], { home });
  t.equal(noConf.code, 3, 'start before init: config not found');
  t.match(noConf.stderr, /ibms\.conf not found: run `ibms -a init` first/);
  t.same(processesOfHome(home), [], 'nothing left running');
});

t.test('check validates without starting; a broken config fails start with its reason', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE), start: false });
  const ok = await d.ibms('-a', 'check');
  t.equal(ok.code, 0);
  t.match(ok.stdout, /4 nodes[\s\S]*3 apps[\s\S]*2 projects[\s\S]*config check ok/);
  const broken = structuredClone(SAMPLE);
  broken.projects[0]!.server_nodes = ['ECIF', 'GHOST'];
  fs.writeFileSync(d.home.etc('ibp_projects.conf'), JSON.stringify({ projects: broken.projects }));
  const bad = await d.ibms('-a', 'check');
  t.equal(bad.code, 3);
  t.match(bad.stderr, /ibp_projects\.conf: key \/projects\/0\/server_nodes\/1 names node GHOST/);
  const start = await d.start();
  t.equal(start.code, 7, 'start fails');
  t.match(start.stderr, /ibms did not start: .*GHOST.*see .*ibms_monitor\.log/);
  await waitFor('no process of the failed start', () => processesOfHome(d.home.root).length === 0, 10_000);
  t.notOk(fs.existsSync(d.home.run('ibms.pid')), 'no pid file');
});

t.test('start, status, double start, monitor restarts a dead worker, stop leaves nothing', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE) });
  const pid = Number(fs.readFileSync(d.home.run('ibms.pid'), 'utf8'));
  t.ok(isAlive(pid), 'pid file names a live monitor');
  const st = await d.ibms('-s', 'status');
  t.equal(st.code, 0);
  t.match(st.stdout, new RegExp(`ibms is running: monitor pid ${pid}, worker pid \\d+, listening ${d.ip.replace(/\./g, '\\.')}:${d.port}`));
  t.match(st.stdout, /nodes 4, apps 3, projects 2/);
  const again = await d.start();
  t.equal(again.code, 7);
  t.match(again.stderr, /already running with pid/);

  const before = ibmsPids(d.home);
  t.equal(before.monitor, pid);
  t.equal(before.workers.length, 1);
  const epoch1 = JSON.parse(await d.ok('-s', 'status', '--json')).worker.epoch;
  process.kill(before.workers[0]!, 'SIGKILL');
  const after = await waitFor('a new worker that answers', async () => {
    const p = ibmsPids(d.home);
    if (p.workers.length !== 1 || p.workers[0] === before.workers[0]) return undefined;
    const r = await d.ibms('-s', 'status', '--json');
    return r.code === 0 && JSON.parse(r.stdout).worker ? JSON.parse(r.stdout) : undefined;
  }, 20_000, 200);
  t.equal(after.monitor_pid, pid, 'same monitor');
  t.not(after.worker.epoch, epoch1, 'the new worker has a new epoch');
  t.match(fs.readFileSync(d.home.log('ibms_monitor.log'), 'utf8'), /worker died , pid\[\d+\] SIGKILL/);

  const stop = await d.stop();
  t.equal(stop.code, 0);
  t.match(stop.stdout, new RegExp(`ibms stopped \\(pid ${pid}\\)`));
  t.same(processesOfHome(d.home.root), [], 'no process of the home is left');
  t.notOk(fs.existsSync(d.home.run('ibms.pid')), 'pid file removed');
  const st2 = await d.ibms('-s', 'status');
  t.equal(st2.code, 7);
  t.match(st2.stderr, /ibms is not running/);
  const cmd = await d.ibms('-s', 'nodes');
  t.equal(cmd.code, 6, 'a command without a daemon: unreachable');
  t.match(cmd.stderr, /is not answering \(ECONNREFUSED\): is it started\?/);
});


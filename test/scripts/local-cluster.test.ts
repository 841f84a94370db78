/**
 * The main job: `npm start` (dist/scripts/local-cluster.js) brings up a cluster, serves ibpsend
 * calls, and Ctrl-C (SIGINT) leaves no process and no shared memory behind.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, isAlive, loopbackIp, processesOfHome, reapHome, runTool, segmentsOfHome, waitFor } from '../helpers/procs.js';

t.test('npm start: cluster up, ibpsend answered, SIGINT leaves nothing', async (t) => {
  const dir = t.testdir();
  const homes = ['ibms-home', 'ecif-home', 'channel-home'].map((h) => path.join(dir, h));
  t.teardown(async () => {
    for (const h of homes) await reapHome(h);
  });
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'local-cluster.js')], {
    env: { ...process.env, IBP_LOCAL_DIR: dir, IBP_LOCAL_IP: loopbackIp() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  await waitFor('the cluster to serve', () => {
    if (child.exitCode !== null) throw new Error(`npm start exited early:\n${stdout}`);
    return stdout.includes('Press Ctrl-C');
  }, 240_000, 100);
  t.match(stdout, /long connection: 2000 echoes, \d+ tx\/s/, 'the demo ran through ibac');
  t.match(stdout, /ibms -a add_app --app ibp_test_echo --desc 'echo the request' --bin/, 'the ibms commands it shows paste into a shell (quoted)');
  t.match(stdout, /attached files: sent 1, got back 1/);
  t.match(stdout, /TypeScript echo \(ibp_ts_echo\.mjs\): 2000 echoes on a long connection, \d+ tx\/s/, 'the TypeScript echo deployed next to the C one');
  t.match(stdout, /TypeScript attached files: sent 1, got back 1: demo_ts.*\.echo/);
  t.match(stdout, /TypeScript KV reader: node ECIF greeting = "hello from the config space"/, 'the KV reader reads the node KV from the config space');
  t.match(stdout, /demo_transfer A001 → A002 125\.50: code 0 \(transaction succeeded\), balances 874\.50 \/ 625\.50/, 'the app framework demo: a good transfer commits');
  t.match(stdout, /demo_transfer A002 → A001 99999\.00: code 1004 \(insufficient funds on A002\): rolled back/, 'a refused transfer');

  const req = path.join(dir, 'request.txt');
  t.ok(fs.existsSync(req), 'the request file it advertises exists');
  const sent = await runTool('ibpsend', ['ECIF', 'ibp_test_echo', req], { home: path.join(dir, 'channel-home') });
  t.equal(sent.code, 0, sent.stderr);
  t.equal(sent.stdout, 'hello from ibpsend', 'ibpsend prints the echo');
  const tsSent = await runTool('ibpsend', ['ECIF', 'ibp_ts_echo', req], { home: path.join(dir, 'channel-home') });
  t.equal(tsSent.stdout, 'hello from ibpsend', 'ibpsend through the TypeScript echo');

  // CHANNEL serves no app: its agent installs no package and never asks the registry for one
  const channelLog = fs.readFileSync(path.join(dir, 'channel-home', 'log', 'ibma_CHANNEL_main.log'), 'utf8');
  t.notMatch(channelLog, /package update failed/, "the client-only node's agent logs no 'package update failed'");
  t.same(fs.readdirSync(path.join(dir, 'channel-home', 'so')).filter((n) => /\.(so|mjs)$/.test(n)), [], 'and installs no package');
  const ibmsLogs = fs.readdirSync(path.join(dir, 'ibms-home', 'log')).filter((n) => n.endsWith('.log')).map((n) => fs.readFileSync(path.join(dir, 'ibms-home', 'log', n), 'utf8')).join('');
  t.notMatch(ibmsLogs, /package refused , node\[CHANNEL\]/, 'ibms refused it nothing: it asked for nothing');

  const pids = homes.flatMap((h) => processesOfHome(h));
  t.ok(pids.length >= 5, `ibms, 2 agents, ibas manager and workers run (${pids.length})`);
  child.kill('SIGINT');
  t.equal(await exited, 0, 'exits 0 after Ctrl-C');
  t.match(stdout, /nothing left running, no shared memory left/);
  t.same(pids.filter(isAlive), [], 'no process of the cluster left');
  for (const h of homes) t.same(await segmentsOfHome(h), [], `no segment of ${path.basename(h)} left (ipcs -m)`);
});

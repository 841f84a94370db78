/**
 * `npm start | head -1`, then Ctrl-C: the local cluster's stdout is a closed pipe long before the
 * SIGINT. Writing to it fails with EPIPE; that must not kill the script before (or while) it stops
 * the cluster: after SIGINT no process and no shared memory segment of the cluster is left.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, isAlive, loopbackIp, processesOfHome, reapHome, segmentsOfHome, waitFor } from '../helpers/procs.js';

t.test('npm start with a closed stdout: SIGINT still stops the whole cluster', async (t) => {
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
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  // `| head -1`: read the first line, then close the pipe
  await new Promise<void>((resolve) => {
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) {
        child.stdout.destroy();
        resolve();
      }
    });
  });
  t.pass('stdout closed after the first line');
  // the cluster comes up regardless (request.txt is written after the demo)
  await waitFor('the cluster to serve', () => {
    if (child.exitCode !== null) throw new Error(`npm start exited early (${child.exitCode}): ${stderr}`);
    return fs.existsSync(path.join(dir, 'request.txt'));
  }, 240_000, 100);
  const pids = homes.flatMap((h) => processesOfHome(h));
  t.ok(pids.length >= 5, `ibms, 2 agents, ibas manager and workers run (${pids.length})`);
  child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const end = await Promise.race([exited, new Promise<undefined>((r) => (timer = setTimeout(r, 120_000, undefined)))]);
  clearTimeout(timer);
  t.ok(end, 'the script exits after SIGINT');
  t.same(pids.filter(isAlive), [], 'no process of the cluster is left');
  for (const h of homes) t.same(await segmentsOfHome(h), [], `no segment of ${path.basename(h)} left`);
});

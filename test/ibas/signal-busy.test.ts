// Signals reach a worker that serves without pause (issue 9 follow-up). A worker runs its
// connections as synchronous libc calls and only hears signals in a turn of its event loop; it
// must take one at least every TURN_MS of continuous work whatever it is doing (a stream of short
// connections each taken at once from the accept queue, or a long connection with back-to-back
// calls), not only when a wait round ends.
//
// 1. Deterministic: a stopped (SIGSTOP) worker gets 2,000 queued connections, each holding its
//    whole call and its end, then SIGUSR1 / SIGTERM and SIGCONT. It can serve them all without
//    one wait; it must reopen its log / leave while most of them still wait in the queue.
// 2. End to end: under a steady load, with monitor.stop_timeout far away (no SIGKILL rescues a
//    deaf worker), a USR2 upgrade's old generation leaves, a busy worker reopens its log on
//    SIGUSR1, and SIGTERM stops the server, without a `stop timeout` line. One signal each: the
//    manager never repeats a SIGTERM.
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, isAlive, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { startLoop } from './helpers/loop.js';

t.setTimeout(180_000);

/** Far beyond every bound below: a worker that leaves only through SIGKILL fails the test. */
const STOP_TIMEOUT_S = 120;
/** How long a graceful leave may take here (a busy shared machine included); well under STOP_TIMEOUT_S. */
const LEAVE_MS = 20_000;

/** The accept queue length of the listening socket ip:port (rx_queue of its /proc/net/tcp row). */
function acceptQueue(ip: string, port: number): number {
  const hexIp = ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).reverse().join('').toUpperCase();
  const local = `${hexIp}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
  for (const row of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return parseInt(f[4]!.split(':')[1]!, 16);
  }
  return -1;
}

function buildClient(t: Test): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibas-signal-busy-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const client = path.join(tmp, 'echoclient');
  execFileSync('gcc', ['-O2', '-pthread', '-o', client, path.join(ROOT, 'test', 'bench', 'ibas-echoclient.c')]);
  return client;
}

/** The echoclient as a child: killed and reaped by stop(). */
function load(client: string, args: string[]): { stop(): Promise<void> } {
  const gen = spawn(client, args, { stdio: 'ignore' });
  const done = new Promise<void>((resolve) => gen.on('exit', () => resolve()));
  return {
    async stop() {
      if (gen.exitCode === null && gen.signalCode === null) gen.kill('SIGKILL');
      await done;
    },
  };
}

const QUEUED = 2000;

t.test('a worker draining a full accept queue hears USR1 and TERM before the queue is empty', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, patch: (c) => { c.monitor.stop_timeout = STOP_TIMEOUT_S; c.comm.listen_backlog = 4096; } });
  await s.start();
  const [w] = await waitWorkers(s, 1);
  const client = buildClient(t);
  const loads: { stop(): Promise<void> }[] = [];
  t.teardown(() => Promise.all(loads.map((l) => l.stop())));
  const tag = `ibas_${s.ip}-${s.port}`;
  const logFile = path.join(s.home, 'log', `${tag}_worker_${w!.index}.log`);
  const txLines = (file: string): number => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '').split('"kind":"transaction"').length - 1;
  const queueUp = async (): Promise<void> => {
    process.kill(w!.pid, 'SIGSTOP');
    loads.push(load(client, ['-H', s.ip, '-p', String(s.port), '-P', 'ibp', '-m', 'short', '-F', '-c', String(QUEUED), '-t', '2', '-N', String(QUEUED), '-d', '120', '-w', '0', '-s', '100']));
    await waitFor(`${QUEUED} connections queued`, () => acceptQueue(s.ip, s.port) >= QUEUED ? true : undefined, 60_000);
  };

  // USR1: the log is reopened while connections still wait
  await queueUp();
  const before = txLines(logFile);
  fs.renameSync(logFile, `${logFile}.1`);
  process.kill(w!.pid, 'SIGUSR1');
  process.kill(w!.pid, 'SIGCONT');
  await waitFor('the log reopened', () => fs.existsSync(logFile) ? true : undefined, LEAVE_MS);
  const servedBeforeReopen = txLines(`${logFile}.1`) - before;
  t.ok(servedBeforeReopen < QUEUED / 2, `the log was reopened after ${servedBeforeReopen} of ${QUEUED} queued connections`);
  await waitFor('the queue served', () => acceptQueue(s.ip, s.port) === 0 && txLines(logFile) + servedBeforeReopen >= QUEUED ? true : undefined, 60_000);
  await Promise.all(loads.splice(0).map((l) => l.stop()));

  // TERM: the worker leaves while connections still wait
  await queueUp();
  const counted = txLines(logFile);
  process.kill(w!.pid, 'SIGTERM');
  process.kill(w!.pid, 'SIGCONT');
  await waitFor('the worker gone', () => !isAlive(w!.pid) ? true : undefined, LEAVE_MS);
  await waitFor('its exit line', () => s.log('monitor').includes(`worker exited , pid[${w!.pid}]`) ? true : undefined, 10_000);
  const servedAfterTerm = txLines(logFile) - counted;
  t.ok(servedAfterTerm < QUEUED / 2, `it left after ${servedAfterTerm} of ${QUEUED} queued connections`);
  t.notMatch(s.log('monitor'), /stop timeout/);
  await Promise.all(loads.splice(0).map((l) => l.stop()));
  t.equal((await s.stop()).code, 0);
  await assertStoppedClean(t, s);
});

t.test('a worker busy without pause takes USR2, USR1 and TERM', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, patch: (c) => { c.monitor.stop_timeout = STOP_TIMEOUT_S; } });
  let pid = await s.start();
  await waitWorkers(s, 2);
  // the bench's C load generator, 32 short connections in flight, each sending its call and its
  // end at once (-F): a worker finds the next connection in the accept queue, and the call and
  // the end on it, so it never waits (no wait round, no EINTR: only its own turns hear signals)
  const gen = load(buildClient(t), ['-H', s.ip, '-p', String(s.port), '-P', 'ibp', '-m', 'short', '-F', '-c', '32', '-d', '150', '-w', '0', '-s', '100']);
  const served = (): number => s.slots().reduce((n, w) => n + w.count, 0);
  const long = startLoop(s.ip, s.port, { loops: 1, long: true, maxTx: 1_000_000 });
  let stopped = false;
  const stopLoads = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([long.stop(), gen.stop()]);
  };
  t.teardown(stopLoads);
    await waitFor('the loads run', () => served() > 2000 && long.stats.ok > 50 ? true : undefined, 60_000)
    .catch((e) => { t.comment(`served ${served()} long ok ${long.stats.ok} failed ${long.stats.failed} ${long.stats.reasons.slice(0, 2).join(' | ')}`); throw e; });
  const noStopTimeout = (what: string): void => {
    t.notMatch(s.log('monitor'), /stop timeout/, `${what}: no worker needed SIGKILL`);
  };

  // USR2: the old generation leaves while the load goes on
  const pidFile = path.join(s.home, 'run', 'ibas.pid');
  const before = pid;
  const oldWorkers = s.slots().filter((w) => w.generation === 1).map((w) => w.pid);
  process.kill(before, 'SIGUSR2');
  pid = await waitFor('a new manager in the pid file', () => {
    try {
      const p = Number(fs.readFileSync(pidFile, 'utf8'));
      return p > 0 && p !== before ? p : undefined;
    } catch {
      return undefined;
    }
  }, 30_000);
  await waitFor('the old generation gone', () => !isAlive(before) && oldWorkers.every((w) => !isAlive(w)) ? true : undefined, LEAVE_MS);
  noStopTimeout('USR2');
  await waitFor('calls after the upgrade', () => served() > 2000 ? true : undefined, 20_000);

  // USR1 to a busy worker: its log is reopened (logrotate moved the file away)
  const busy = await waitWorkers(s, 2);
  const w = busy[0]!;
  const tag = `ibas_${s.ip}-${s.port}`;
  const logFile = path.join(s.home, 'log', `${tag}_worker_${w.index}.log`);
  fs.renameSync(logFile, `${logFile}.1`);
  process.kill(w.pid, 'SIGUSR1');
  await waitFor('the busy worker reopened its log', () => fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes(`"pid":${w.pid}`) ? true : undefined, LEAVE_MS);

  // TERM: the server stops while the load goes on
  const workers = s.slots().map((x) => x.pid);
  t.equal(long.stats.failed, 0, `no failed call on the long connection (${long.stats.reasons.slice(0, 2).join(' | ')})`);
  process.kill(pid, 'SIGTERM');
  await waitFor('the manager and its workers gone', () => !isAlive(pid) && workers.every((x) => !isAlive(x)) ? true : undefined, LEAVE_MS);
  noStopTimeout('TERM');
  await stopLoads();
  for (const x of workers) t.match(s.log('monitor'), new RegExp(`worker exited , pid\\[${x}\\][^\\n]*class\\[stopped\\]`), `worker ${x} left gracefully`);
  if (process.env.IBP_TEST_DUMP) fs.writeFileSync(process.env.IBP_TEST_DUMP, s.log('monitor') + s.log(0) + s.log(1) + s.log(2) + s.log(3));
  await assertStoppedClean(t, s);
});

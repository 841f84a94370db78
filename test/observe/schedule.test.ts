/**
 * Scheduled jobs (node-cron): the scheduler skips a run while the previous one is going and keeps
 * going after a failure; bad cron expressions are refused when a conf is loaded (`-a check`) with
 * the key and the cron field named; ibms runs its conf's jobs (save_config, second_config_dump);
 * an ibas runs a scheduled transaction through a worker — one transaction log line with the
 * schedule's client and journal, one manager line with the result — and skips a run while a slow
 * one is still going.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Scheduler } from '../../lib/schedule.js';
import { validate } from '../../lib/config/load.js';
import { IbmsConf, defaultIbmsConf } from '../../lib/config/ibms-conf.js';
import { silentLogger, createLogger } from '../../lib/log.js';
import { setupIbas } from '../ibas/helpers/server.js';
import { Cluster, privateDir } from '../helpers/cluster.js';
import { waitFor } from '../helpers/procs.js';
import { runStamp } from '../../ibas/scheduled.js';

t.test('a run still going makes the next one skip; a failure does not stop the schedule', async (t) => {
  const dir = privateDir(t, 'sched');
  const logFile = path.join(dir, 'sched.log');
  const log = createLogger({ name: 'test', file: logFile });
  const s = new Scheduler(log);
  t.teardown(() => s.stop());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let runs = 0;
  const body = async (): Promise<void> => {
    runs++;
    await gate;
  };
  s.add('slow', '0 0 1 1 *', body); // far in the future: the test drives the runs
  const first = s.run('slow', body);
  await s.run('slow', body);
  t.equal(runs, 1, 'the second run did not start');
  t.equal(s.stats()[0]!.skipped, 1);
  t.match(fs.readFileSync(logFile, 'utf8'), /schedule skipped , job\[slow\] , the previous run is still going/);
  release();
  await first;
  const failing = async (): Promise<void> => {
    throw new Error('boom');
  };
  s.add('fails', '0 0 1 1 *', failing);
  await s.run('fails', failing);
  await s.run('fails', failing);
  t.match(s.stats().find((j) => j.name === 'fails'), { runs: 2, failures: 2, lastError: 'boom' });
  t.match(fs.readFileSync(logFile, 'utf8'), /schedule run failed , job\[fails\] reason\[boom\]/);
});

t.test('a real cron timer fires (every second)', async (t) => {
  const s = new Scheduler(silentLogger());
  t.teardown(() => s.stop());
  let n = 0;
  s.add('tick', '* * * * * *', async () => {
    n++;
  });
  await waitFor('two ticks', () => n >= 2, 10_000, 50);
  t.ok(n >= 2);
});

t.test('bad cron expressions are refused naming the key and the cron field', async (t) => {
  const conf = { ...defaultIbmsConf(), schedule: { save_config: '61 * * * *' } };
  t.throws(() => validate(IbmsConf, conf, '/h/etc/ibms.conf'), { code: 'IBP_ERR_CFG_INVALID', message: /key \/schedule\/save_config is not a valid cron expression \("61 \* \* \* \*"\): minute "61"/ });
  t.throws(() => validate(IbmsConf, { ...defaultIbmsConf(), schedule: { reap_sessions: 'every minute' } }, 'f'), { message: /\/schedule\/reap_sessions is not a valid cron expression/ });
  t.doesNotThrow(() => validate(IbmsConf, { ...defaultIbmsConf(), schedule: { save_config: '*/5 * * * *', build_config: '0 3 * * 1-5' } }, 'f'));

  const s = await setupIbas(t, { patch: (c) => { c.schedule = [{ name: 'bad', cron: '* 25 * * *', app: 'ibp_test_echo' }]; } });
  const r = await s.ibas(['-f', s.conf, '-a', 'check']);
  t.not(r.code, 0, '`ibas -a check` refuses it');
  t.match(r.stderr, /key \/schedule\/0\/cron is not a valid cron expression \("\* 25 \* \* \*"\): hour "25"/);
});

t.test('ibas runs a scheduled transaction through a worker, and skips while one is going', async (t) => {
  const s = await setupIbas(t, {
    apps: [{ app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 20 }],
    patch: (c) => {
      c.schedule = [
        { name: 'echo', cron: '* * * * * *', app: 'ibp_test_echo', request: 'scheduled hello' },
        { name: 'slow', cron: '* * * * * *', app: 'ibp_test_slow', request: '2500' },
      ];
    },
  });
  await s.start();
  const workerLogs = (): string => [0, 1, 2, 3].map((n) => { try { return s.log(n); } catch { return ''; } }).join('\n');
  const STAMP = '\\d{8}T\\d{6}\\.\\d{3}Z'; // the run's UTC time: unique across restarts and generations
  await waitFor('a scheduled echo in a worker log', () => new RegExp(`"journal":"sched:echo:${STAMP}"`).test(workerLogs()), 20_000, 100);
  const line = workerLogs().split('\n').find((l) => new RegExp(`"journal":"sched:echo:${STAMP}"`).test(l))!;
  const rec = JSON.parse(line) as Record<string, any>;
  t.match(rec, { kind: 'transaction', app: 'ibp_test_echo', rc: 0, client: { node: 'ibas-schedule' } }, 'served and logged like any transaction');
  await waitFor('the manager logs the result', () => /scheduled transaction , job\[echo\] app\[ibp_test_echo\] journal\[sched:echo:\d{8}T\d{6}\.\d{3}Z\] rc\[0 OK\]/.test(s.log('monitor')), 10_000, 100);
  await waitFor('a slow run skipped while it is going', () => /schedule skipped , job\[tx:slow\] , the previous run is still going/.test(s.log('monitor')), 20_000, 100);
  await waitFor('the slow run answered', () => /scheduled transaction , job\[slow\] app\[ibp_test_slow\] journal\[sched:slow:\d{8}T\d{6}\.\d{3}Z\] rc\[0 OK\]/.test(s.log('monitor')), 20_000, 100);
  t.pass('skipped, then answered');
  const journals = new Set([...workerLogs().matchAll(/"journal":"(sched:echo:[^"]+)"/g)].map((m) => m[1]));
  t.ok(journals.size >= 2, `each run has its own journal (${[...journals].slice(0, 3).join(', ')})`);
  t.equal(runStamp(new Date(Date.UTC(2026, 10, 30, 2, 0, 0, 4))), '20261130T020000.004Z', 'the stamp: UTC, to the millisecond');
  const stop = await s.stop();
  t.equal(stop.code, 0);
});

t.test('ibms runs its conf schedules: save_config and the second copy', async (t) => {
  const c = await Cluster.start(t, { ibms: { misc: { second_config_dump: 'dump2' }, schedule: { save_config: '* * * * * *', second_config_dump: '* * * * * *' } } });
  await c.admin(['-a', 'add_node', '--node', 'SCHED_NODE']);
  const saved = path.join(c.registryHome, 'etc', 'ibp_nodes.conf');
  const second = path.join(c.registryHome, 'dump2', 'ibp_nodes.conf');
  await waitFor('the scheduled save wrote the new node', () => fs.existsSync(saved) && fs.readFileSync(saved, 'utf8').includes('SCHED_NODE'), 15_000, 100);
  await waitFor('the second copy too', () => fs.existsSync(second) && fs.readFileSync(second, 'utf8').includes('SCHED_NODE'), 15_000, 100);
  const log = fs.readFileSync(path.join(c.registryHome, 'log', 'ibms_worker.log'), 'utf8');
  t.match(log, /schedule run , job\[save_config\]/);
  t.match(log, /schedule run , job\[second_config_dump\]/);
});

// `-s status / bbstat / bbdetail` match reality: the pids are the live worker processes, the
// running transaction shows as WORKING with its app and age, counts match what was served, and
// the accept lock's state is reported.
import t from 'tap';
import { isAlive, waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

interface Row { slot: number; pid: number; generation: number; state: string; app: string; tx_age_ms: number | null; transactions: number; errors: number; connections: number; uptime_s: number }

t.test('scoreboard views match reality', async (t) => {
  const s = await setupIbas(t, { maxCount: 3, apps: [{ app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 10 }] });
  const managerPid = await s.start();
  await waitWorkers(s, 3);

  const fast = await TestClient.connect(s.ip, s.port);
  for (let i = 0; i < 7; i++) await fast.call('ibp_test_echo', `e${i}`);
  await fast.call('ibp_test_rc', '3:no');
  const slow = await TestClient.connect(s.ip, s.port);
  const slowCall = slow.call('ibp_test_slow', '8000');
  await waitFor('the slow transaction to run', () => s.slots().some((w) => w.state === 'WORKING' && w.app === 'ibp_test_slow'), 10_000);
  await new Promise((r) => setTimeout(r, 300));

  // the four views at once (each run of the tool costs a Node start)
  const [detail, statRun, status, table] = await Promise.all([
    s.ibas(['-f', s.conf, '-s', 'bbdetail', '--json']),
    s.ibas(['-f', s.conf, '-s', 'bbstat', '--json']),
    s.ibas(['-f', s.conf, '-s', 'status']),
    s.ibas(['-f', s.conf, '-s', 'bbdetail']),
  ]);
  t.equal(detail.code, 0, detail.stderr);
  const rows = JSON.parse(detail.stdout) as Row[];
  t.equal(rows.length, 3, 'one row per worker');
  for (const r of rows) {
    t.ok(isAlive(r.pid), `slot ${r.slot}: pid ${r.pid} is a live process`);
    t.equal(r.generation, 1);
  }
  const working = rows.find((r) => r.state === 'WORKING')!;
  t.equal(working.app, 'ibp_test_slow', 'the running transaction\'s app');
  t.ok(working.tx_age_ms! >= 300 && working.tx_age_ms! < 8000, `its age (${working.tx_age_ms} ms)`);
  const fastRow = rows.find((r) => r.state === 'KEEPALIVE')!;
  t.ok(fastRow, 'the worker holding the idle long connection shows KEEPALIVE');
  t.equal(fastRow.transactions, 8, 'it served 8 transactions');
  t.equal(fastRow.errors, 1, 'one of them failed');
  t.equal(fastRow.connections, 1);
  t.equal(rows.filter((r) => r.state === 'LISTEN').length, 1, 'the third worker leads (holds the accept lock)');

  const stat = JSON.parse(statRun.stdout) as Record<string, unknown>;
  t.match(stat, { mode: 'STATIC_WORKERPOOL', workers: 3, working: 1, keepalive: 1, listen: 1, working_total: '2/3', transactions: 8, errors: 1, spawned: 3, abnormal_exits: 0, accept_lock: 'held' });
  t.match(stat.pool, /^[WKL.]{6}$/, 'the pool in status characters');

  t.match(status.stdout, new RegExp(`ibas is running , pid\\[${managerPid}\\] mode\\[STATIC_WORKERPOOL\\] listen\\[${s.ip.replace(/\./g, '\\.')}:${s.port}\\] generation\\[1\\] workers\\[3\\] working\\[2\\]`));
  t.match(status.stdout, /\npool\[[WKL.]{6}\] \(_ idle, L listening, R reading, W working, K keep-alive, S starting, G leaving, \. free slot\)\n/, 'the pool line with its legend');
  t.match(status.stdout, /K KEEPALIVE .*ibp_test_rc /, 'a worker between transactions shows the app it ran last');
  t.match(table.stdout, /W WORKING.*ibp_test_slow/, 'the table view') || t.comment(table.stdout + table.stderr);

  t.equal((await slowCall).body.toString(), 'slept:8000');
  const after = JSON.parse((await s.ibas(['-f', s.conf, '-s', 'bbdetail', '--json'])).stdout) as Row[];
  t.equal(after.find((r) => r.pid === working.pid)!.state, 'KEEPALIVE', 'after the transaction its worker keeps the connection');
  t.equal(after.find((r) => r.pid === working.pid)!.tx_age_ms, null, 'and no transaction age');
  fast.close();
  slow.close();

  t.equal((await s.stop()).code, 0);
  const gone = await s.ibas(['-f', s.conf, '-s', 'status']);
  t.equal(gone.code, 7, 'status of a stopped server exits 7');
  t.match(gone.stdout, /ibas is not running/);
});

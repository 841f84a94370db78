// The participant side of two-phase commit you can recover: a leg of a global transaction (a
// gtrid in its pre-request) is logged PREPARED in $IBP_HOME/tlog before its yes vote; when its
// connection goes it stays in doubt (no unilateral rollback), `ibas -s in_doubt` lists it, even
// after a server restart, and a decision by gtrid on any connection — the coordinator's or the
// operator's `ibas -a commit_tx|abort_tx` (audited) — runs the app's socommit/sorollback with
// ctx->gtrid and answers with the app's rc and body. Repeats are answered from the log; the other
// decision afterwards is a heuristic; a rollback for a gtrid never prepared here leaves a
// tombstone that turns a late prepare into a no vote.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { TX_FLAG } from '../../lib/protocol/codec.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';
import { branchFileName } from '../../ibas/participant-log.js';

t.test('in doubt after the connection went, across a restart; decided by the operator and by gtrid', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so' }] });
  await s.start();
  await waitWorkers(s, 2);
  const marker = (j: string, state: string) => path.join(s.home, 'file', `ibp_test_2pc.${j}.${state}`);
  const journalLines = () => {
    const f = path.join(s.home, 'file', 'ibp_test_2pc.journal');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
  };
  const decide = async (op: 'COMMIT' | 'ROLLBACK', gtrid: string, journal = '') => {
    const c = await TestClient.connect(s.ip, s.port);
    try {
      c.send({ type: 'TX_CONTROL', op, journal, gtrid });
      return await c.next();
    } finally {
      c.close();
    }
  };

  // two legs prepared, connections closed: both stay in doubt
  for (const [g, j] of [['G1.a', 'J1'], ['G2.b', 'J2']]) {
    const c = await TestClient.connect(s.ip, s.port);
    const p = await c.call('ibp_test_2pc', `leg ${j}`, { flags: TX_FLAG.PREPARE, journal: j, gtrid: g, clientNode: 'CLI' });
    t.equal(p.rc, RC.OK, `${g} prepared`);
    t.equal(p.granted & TX_FLAG.GTRID, TX_FLAG.GTRID, 'GTRID granted');
    t.equal(JSON.parse(fs.readFileSync(path.join(s.home, 'tlog', `${branchFileName(g!, j!)}.json`), 'utf8')).state, 'PREPARED', 'PREPARED logged before the vote');
    c.close();
  }
  await waitFor('both connections to be gone', () => /two-phase in doubt: connection closed before the decision , gtrid\[G2\.b\]/.test(s.log(0) + s.log(1)), 10_000, 20);
  t.notOk(fs.existsSync(marker('J1', 'rolledback')), 'no unilateral rollback after a yes vote');
  t.match(s.log(0) + s.log(1), /transaction , journal\[J1\] gtrid\[G1\.a\] app\[ibp_test_2pc\]/, 'the gtrid is in the transaction log line');

  // a restart: the log survives, the operator sees both
  t.equal((await s.stop()).code, 0);
  await s.start();
  await waitWorkers(s, 2);
  const shown = await s.ibas(['-f', s.conf, '-s', 'in_doubt', '--json']);
  t.equal(shown.code, 0, shown.stderr);
  const rows = JSON.parse(shown.stdout) as { gtrid: string; app: string; journal: string; clientNode: string; ageS: number }[];
  t.same(rows.map((r) => [r.gtrid, r.app, r.journal, r.clientNode]), [['G1.a', 'ibp_test_2pc', 'J1', 'CLI'], ['G2.b', 'ibp_test_2pc', 'J2', 'CLI']], 'listed with app, journal, coordinator');
  t.ok(rows.every((r) => r.ageS >= 0));
  t.match((await s.ibas(['-f', s.conf, '-s', 'status'])).stdout, /two-phase in doubt\[2\] oldest\[\d+s\] \(ibas -s in_doubt\)/, 'the status says so');

  // the operator commits one: a fresh worker runs socommit with the gtrid
  const committed = await s.ibas(['-f', s.conf, '-a', 'commit_tx', '--gtrid', 'G1.a']);
  t.equal(committed.code, 0, committed.stderr);
  t.match(committed.stdout, /ibas commit_tx ok , gtrid\[G1\.a\] app_rc\[0\] body\[committed:J1\]/, "the app's answer comes back");
  t.ok(fs.existsSync(marker('J1', 'committed')));
  t.ok(journalLines().includes('G1.a committed J1'), 'socommit saw ctx->gtrid');
  // the coordinator's decision by gtrid on a new connection, for the other one
  const a2 = await decide('ROLLBACK', 'G2.b', 'J2');
  t.match(a2, { type: 'TX_CONTROL_ANSWER', rc: RC.OK, appRc: 0 });
  t.equal((a2 as { body: Buffer }).body.toString(), 'rolledback:J2', 'TX_CONTROL_ANSWER carries the body');
  t.same(JSON.parse((await s.ibas(['-f', s.conf, '-s', 'in_doubt', '--json'])).stdout), [], 'nothing in doubt any more');

  // repeats: answered from the log, the app is not called again; the other way: heuristic
  const again = await decide('COMMIT', 'G1.a', 'J1');
  t.match(again, { rc: RC.OK });
  t.equal((again as { body: Buffer }).body.toString(), 'committed:J1', 'the same answer again');
  t.equal(journalLines().filter((l) => l.startsWith('G1.a committed')).length, 1, 'socommit ran once');
  const abort = await s.ibas(['-f', s.conf, '-a', 'abort_tx', '--gtrid', 'G1.a']);
  t.not(abort.code, 0);
  t.match(abort.stderr, /IBP_ERR_TX_HEURISTIC|already committed/);
  t.match(await decide('COMMIT', 'G9.never', 'J9'), { rc: RC.TX_UNKNOWN }, 'COMMIT for a gtrid never prepared');

  // presumed abort first, the prepare later: the vote is no and the app's prepare is undone
  t.match(await decide('ROLLBACK', 'G3.late', 'J3'), { rc: RC.OK }, 'ROLLBACK of an unknown gtrid: OK, tombstone');
  const c = await TestClient.connect(s.ip, s.port);
  const late = await c.call('ibp_test_2pc', 'late', { flags: TX_FLAG.PREPARE, journal: 'J3', gtrid: 'G3.late' });
  t.equal(late.rc, RC.TX_ABORTED, 'the late prepare votes no');
  t.ok(fs.existsSync(marker('J3', 'rolledback')), 'and its work is rolled back');
  c.close();

  // the operator commands are audited
  const audit = fs.readFileSync(path.join(s.home, 'log', 'tx-audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; gtrid?: string; result: string; user: string });
  t.same(audit.map((a) => [a.action, a.gtrid ?? '', a.result]), [
    ['in_doubt', '', '2 in doubt'], ['commit_tx', 'G1.a', 'OK'], ['in_doubt', '', '0 in doubt'], ['abort_tx', 'G1.a', 'TX_HEURISTIC'],
  ]);
  t.ok(audit.every((a) => a.user.length > 0));
  t.equal((await s.stop()).code, 0);
});

t.test('two branches of one gtrid on one server: both prepare, listed apart, one operator commit_tx decides both', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so' }] });
  await s.start();
  await waitWorkers(s, 2);
  const journalLines = () => {
    const f = path.join(s.home, 'file', 'ibp_test_2pc.journal');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
  };
  // the same app twice in one gtrid (two legs of a multi-transaction), one connection each
  const conns = await Promise.all([TestClient.connect(s.ip, s.port), TestClient.connect(s.ip, s.port)]);
  for (const [i, j] of ['JA', 'JB'].entries()) {
    const p = await conns[i]!.call('ibp_test_2pc', `leg ${j}`, { flags: TX_FLAG.PREPARE, journal: j, gtrid: 'G5.two', clientNode: 'CLI' });
    t.equal(p.rc, RC.OK, `branch ${j} of G5.two prepared (voted yes)`);
  }
  for (const c of conns) c.close();
  await waitFor('both connections to be gone', () => (s.log(0) + s.log(1)).match(/two-phase in doubt: connection closed before the decision , gtrid\[G5\.two\]/g)?.length === 2, 10_000, 20);
  const shown = await s.ibas(['-f', s.conf, '-s', 'in_doubt', '--json']);
  t.equal(shown.code, 0, shown.stderr);
  t.same((JSON.parse(shown.stdout) as { gtrid: string; journal: string; app: string; clientNode: string }[]).map((r) => [r.gtrid, r.journal, r.app, r.clientNode]),
    [['G5.two', 'JA', 'ibp_test_2pc', 'CLI'], ['G5.two', 'JB', 'ibp_test_2pc', 'CLI']], 'two branches of one gtrid listed');
  const committed = await s.ibas(['-f', s.conf, '-a', 'commit_tx', '--gtrid', 'G5.two']);
  t.equal(committed.code, 0, committed.stderr);
  t.match(committed.stdout, /gtrid\[G5\.two\] journal\[JA\] app\[ibp_test_2pc\] state\[committed\] app_rc\[0\] body\[committed:JA\]/, 'branch JA reported');
  t.match(committed.stdout, /gtrid\[G5\.two\] journal\[JB\] app\[ibp_test_2pc\] state\[committed\] app_rc\[0\] body\[committed:JB\]/, 'branch JB reported');
  t.same(journalLines().filter((l) => l.startsWith('G5.two committed')).sort(), ['G5.two committed JA', 'G5.two committed JB'], 'each branch committed once');
  t.same(JSON.parse((await s.ibas(['-f', s.conf, '-s', 'in_doubt', '--json'])).stdout), [], 'nothing in doubt any more');
  // the coordinator repeating its decision per branch: answered from each branch's record
  const c = await TestClient.connect(s.ip, s.port);
  c.send({ type: 'TX_CONTROL', op: 'COMMIT', journal: 'JB', gtrid: 'G5.two' });
  const again = await c.next();
  c.close();
  t.match(again, { type: 'TX_CONTROL_ANSWER', rc: RC.OK });
  t.equal((again as { body: Buffer }).body.toString(), 'committed:JB');
  t.equal(journalLines().filter((l) => l.startsWith('G5.two committed')).length, 2, 'no commit ran again');
  t.equal((await s.stop()).code, 0);
});

/**
 * Two-phase commit you can recover, proven by crashing it: kill -9 at each of six points of a
 * global transaction over two participant nodes (coordinator before prepare; participant after
 * voting yes; coordinator after all votes, before logging; after logging, before sending;
 * mid-commit; participant after commit, before acking), each followed by recovery, and an oracle
 * over the participants' side-effect journals: every participant ends with the decision the
 * coordinator logged (ROLLBACK when none was logged), nobody is left in doubt.
 * test/ibac/helpers/crash-matrix.ts has the machinery; `npm run bench:2pc` runs more rounds.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Matrix, POINTS } from './helpers/crash-matrix.js';

// one round keeps the file within CI's budget; IBP_2PC_MATRIX_ROUNDS=N for more (npm run bench:2pc runs 10)
const ROUNDS = Number(process.env.IBP_2PC_MATRIX_ROUNDS ?? 1);

t.test('crash matrix: kill -9 at every point, recover, the oracle agrees', async (t) => {
  const m = await Matrix.start(t);
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const point of POINTS) {
      const r = await m.run(point);
      t.comment(`${point}: gtrid ${r.gtrid} logged ${r.logged ?? '-'} → ${JSON.stringify(r.outcomes)} recovery ${r.recoveryMs.toFixed(0)} ms`);
      t.ok(r.crashed, `${point}: the crash happened`);
      t.same(r.violations, [], `${point} round ${round}: every participant's outcome is the logged decision (${r.expected})`);
      const s = seen.get(point) ?? new Set<string>();
      s.add(r.expected);
      seen.set(point, s);
    }
  }
  // the operator's command does the same: ibpsend --recover (audited)
  const r = await m.run('coordinator_after_log', 'ibpsend');
  t.same(r.violations, [], 'ibpsend --recover finished the transaction with the logged decision');
  t.equal(r.report.finished, 1);
  const audit = fs.readFileSync(path.join(m.cli.home, 'log', 'tx-audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; result: string });
  t.match(audit.at(-1), { action: 'recover', result: '1 finished, 0 left' }, 'audited');
  // the points decide as they must: before the decision is logged it is a rollback, after it a commit
  t.same([...seen.get('coordinator_before_prepare')!], ['ROLLBACK'], 'a crash before prepare: presumed abort');
  t.same([...seen.get('coordinator_after_votes')!], ['ROLLBACK'], 'a crash after the votes, before logging: presumed abort');
  t.same([...seen.get('coordinator_after_log')!], ['COMMIT'], 'a crash after logging COMMIT: committed by recovery');
  t.same([...seen.get('coordinator_mid_commit')!], ['COMMIT'], 'a crash mid-commit: the rest committed by recovery');
  t.same([...seen.get('participant_after_vote')!], ['COMMIT'], 'a participant crash after its yes vote: committed from its log');
  t.same([...seen.get('participant_after_commit')!], ['COMMIT'], 'a participant crash before its ack: the retry is answered from its log');
});

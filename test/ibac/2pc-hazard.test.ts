/**
 * Two-phase commit with a participant server that dies for good after its yes vote (kill -9 of
 * the manager and workers): the coordinator reports that participant as IBP_ERR_TX_HAZARD (never
 * as success) while the others carry out the logged decision with the app's answer; once the
 * server is back, `ibas -s in_doubt` lists the transaction and the coordinator's recovery commits
 * it from the participant log (the app's socommit runs in the new server with the gtrid).
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { killIbas } from '../helpers/cluster.js';
import { waitFor } from '../helpers/procs.js';
import { Matrix, SCHEDULE } from './helpers/crash-matrix.js';

t.test('a participant server killed after its vote: hazard for it (never success), committed after its restart', async (t) => {
  const m = await Matrix.start(t);
  const [n1, n2] = m.servers;
  const multi = await m.env.multiConnect([
    { node: 'N1', app: 'ibp_test_2pc', request: 'debit' },
    { node: 'N2', app: 'ibp_test_2pc', request: 'credit' },
  ]);
  const prepared = await multi.multiSendRequestsAndReceiveResponses({ prepare: true });
  t.ok(prepared.every((p) => p.ok), 'both voted yes');
  const gtrid = multi.gtrid;
  await killIbas(n2!); // kill -9 of the whole server: manager and workers
  const decided = await multi.multiSendCommitOrRollbackAndReceiveResponses(true);
  multi.multiDisconnect();
  t.match(decided[0], { node: 'N1', ok: true, response: { op: 'COMMIT', gtrid } });
  t.equal(decided[0]!.response!.body.toString(), `committed:${prepared[0]!.journal}`, "N1's commit answer carries the app's body");
  t.match(decided[1], { node: 'N2', ok: false, error: { code: 'IBP_ERR_TX_HAZARD' } }, 'N2: hazard, not success');
  t.match(decided[1]!.error!.message, new RegExp(`${gtrid.replace(/\./g, '\\.')}.*COMMIT.*N2`));

  await m.cluster.startServer(n2!);
  const journal = path.join(n2!.home, 'file', 'ibp_test_2pc.journal');
  const rows = JSON.parse((await n2!.run('ibas', ['-s', 'in_doubt', '--json'])).stdout) as { gtrid: string }[];
  t.same(rows.map((r) => r.gtrid), [gtrid], 'in doubt on N2 after its restart');
  const report = await waitFor('recovery to reach N2', async () => {
    const r = await m.env.recover(SCHEDULE);
    return r.finished === 1 ? r : undefined;
  }, 30_000, 200);
  t.match(report.transactions[0], { gtrid, decision: 'COMMIT', presumed: false, finished: true });
  t.ok(fs.readFileSync(journal, 'utf8').includes(`${gtrid} committed`), 'N2 committed, by its restarted server, from its participant log');
  t.same(JSON.parse((await n2!.run('ibas', ['-s', 'in_doubt', '--json'])).stdout), [], 'nothing in doubt on N2');
  t.equal(fs.readFileSync(path.join(n1!.home, 'file', 'ibp_test_2pc.journal'), 'utf8').split('\n').filter((l) => l.startsWith(`${gtrid} committed`)).length, 1, 'N1 committed once');
});

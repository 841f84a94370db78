// Two-phase commit on one connection: a transaction asked with TX_FLAG.PREPARE runs somain as
// the prepare; a TX_CONTROL COMMIT or ROLLBACK for its journal then runs socommit/sorollback on
// the same worker; a connection that closes before deciding is rolled back by the server.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { TX_FLAG } from '../../lib/protocol/codec.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';

t.test('prepare, then commit or rollback', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, apps: [{ app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so' }] });
  await s.start();
  await waitWorkers(s, 1);
  const marker = (j: string, state: string) => path.join(s.home, 'file', `ibp_test_2pc.${j}.${state}`);
  const c = await TestClient.connect(s.ip, s.port);
  const decide = async (op: 'COMMIT' | 'ROLLBACK', journal: string) => {
    c.send({ type: 'TX_CONTROL', op, journal, gtrid: '' });
    return c.next();
  };

  const p1 = await c.call('ibp_test_2pc', 'debit 100', { flags: TX_FLAG.PREPARE, journal: 'J1' });
  t.equal(p1.rc, RC.OK, 'prepare ok');
  t.equal(p1.granted & TX_FLAG.PREPARE, TX_FLAG.PREPARE, 'PREPARE granted');
  t.equal(p1.body.toString(), 'prepared:debit 100');
  t.ok(fs.existsSync(marker('J1', 'prepared')), 'the app prepared');
  t.match(await decide('COMMIT', 'J1'), { type: 'TX_CONTROL_ANSWER', rc: RC.OK });
  t.ok(fs.existsSync(marker('J1', 'committed')), 'socommit ran');

  await c.call('ibp_test_2pc', 'credit 5', { flags: TX_FLAG.PREPARE, journal: 'J2' });
  t.match(await decide('ROLLBACK', 'J2'), { type: 'TX_CONTROL_ANSWER', rc: RC.OK });
  t.ok(fs.existsSync(marker('J2', 'rolledback')), 'sorollback ran');
  t.notOk(fs.existsSync(marker('J2', 'committed')));

  t.match(await decide('COMMIT', 'J2'), { type: 'TX_CONTROL_ANSWER', rc: RC.PROTO_SEQUENCE }, 'deciding twice: no prepared transaction');
  const refused = await c.call('ibp_test_2pc', 'fail', { flags: TX_FLAG.PREPARE, journal: 'J3' });
  t.match(refused, { rc: RC.APP_FAILED, appRc: 7 }, 'a participant refusing the prepare');
  t.match(await decide('ROLLBACK', 'J3'), { rc: RC.PROTO_SEQUENCE }, 'a refused prepare leaves nothing to decide');
  const no2pc = await c.call('ibp_test_echo', 'x', { flags: TX_FLAG.PREPARE, journal: 'J4' });
  t.equal(no2pc.rc, RC.APP_NO_2PC, 'PREPARE on an app without socommit/sorollback: APP_NO_2PC');

  await c.call('ibp_test_2pc', 'pending', { flags: TX_FLAG.PREPARE, journal: 'J5' });
  c.close();
  await waitFor('the undecided transaction to be rolled back', () => fs.existsSync(marker('J5', 'rolledback')), 10_000);
  t.match(s.log(0), /two-phase rollback: connection closed before the decision , journal\[J5\]/);
  t.equal((await s.stop()).code, 0);
});

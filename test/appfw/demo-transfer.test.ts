/**
 * The demo_transfer app (lib/appfw/demo/transfer.ts, package build/apps/demo_transfer.mjs):
 * declared messages, a function tree per phase, SQLite accounts and a journal table.
 *
 * In process through the harness (the worker's own JS loader): a good transfer commits and
 * answers code 0; a failing business check (insufficient funds) and a failure found while
 * posting (closed account, after the debit) roll back and leave the accounts unchanged; a bad
 * request is refused before any phase. End to end on a real ibas (manager and workers on its
 * node's config space): the generated ibac client stub (call(node, req) → typed response) and the
 * HTTP adapter, against the server's database. (npm start's demo runs it on a full cluster, see
 * test/scripts/local-cluster.test.ts.)
 *
 * The app imports the framework as `ibp-ts/…`; ibas and the harness load a private copy of the
 * package from its private copy, where node_modules/ibp-ts links to this installation (see
 * docs/app-framework.md, "Deploying").
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import Database from 'better-sqlite3';
import { ROOT, waitFor } from '../helpers/procs.js';
import { NODE, setupIbas, waitWorkers } from '../ibas/helpers/server.js';
import { openApp } from '../../lib/app/testing.js';
import { createEnvironment } from '../../ibac/index.js';
import { transfer_req, transfer_rsp, demo_transfer_client } from '../../lib/appfw/demo/demo_transfer.dsc.js';
import { DEMO_RC, JOURNAL_TABLE } from '../../lib/appfw/demo/transfer.js';

const APP_FILE = path.join(ROOT, 'build', 'apps', 'demo_transfer.mjs');

function accounts(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true });
  try {
    return Object.fromEntries((db.prepare('SELECT id, balance FROM demo_account ORDER BY id').all() as { id: string; balance: number }[]).map((r) => [r.id, (r.balance / 100).toFixed(2)]));
  } finally {
    db.close();
  }
}

function journalRow(file: string, journal: string): Record<string, unknown> | undefined {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT * FROM ${JOURNAL_TABLE} WHERE journal = ?`).get(journal) as Record<string, unknown> | undefined;
  } finally {
    db.close();
  }
}

const req = (from: string, to: string, amount: string, memo = '') => transfer_req.packJson({ ...transfer_req.init(), from_account: from, to_account: to, amount, memo });

t.test('in process: commit, rollback on a failed check and on a failed posting, bad request', async (t) => {
  const dbFile = path.join(t.testdir(), 'demo.db');
  const app = await openApp(APP_FILE, { app: 'demo_transfer', kv: { 'demo_transfer.db': dbFile } });
  t.teardown(() => app.close());
  t.same(accounts(dbFile), { A001: '1000.00', A002: '500.00', A003: '0.00' }, 'init opened the demo accounts');

  const ok = await app.call({ request: req('A001', 'A002', '250.10'), journal: 'D1' });
  t.equal(ok.appRc, 0);
  const rsp = transfer_rsp.unpackJson(ok.response);
  t.same(rsp, { response_code: 0, response_desc: 'transaction succeeded', journal: 'D1', from_balance: '749.90', to_balance: '750.10' });
  t.same(accounts(dbFile), { A001: '749.90', A002: '750.10', A003: '0.00' });
  t.match(journalRow(dbFile, 'D1'), { trans_code: 'demo_transfer', status: 'OK', response_code: 0 });
  t.ok(ok.log.some((l) => l.level === 'debug' && /tm: .*\[debit\] debit rc=0/.test(l.msg)), 'the function trace is in the app log at debug');
  t.ok(ok.log.some((l) => /\[memo given\?\] memo_is_empty rc=1/.test(l.msg)) && ok.log.some((l) => /default_memo/.test(l.msg)), 'IF_FUNC_THEN ran its body (no memo given)');

  const poor = await app.call({ request: req('A002', 'A001', '5000.00'), journal: 'D2' });
  t.same(transfer_rsp.unpackJson(poor.response), { ...transfer_rsp.init(), response_code: DEMO_RC.FUNDS, response_desc: 'insufficient funds on A002', journal: 'D2' });
  t.same(accounts(dbFile), { A001: '749.90', A002: '750.10', A003: '0.00' }, 'a failed business check leaves the accounts unchanged');
  t.match(journalRow(dbFile, 'D2'), { status: 'REFUSED', response_code: DEMO_RC.FUNDS, failed_phase: 'business-check/account' });

  const closed = await app.call({ request: req('A001', 'A003', '1.00', 'to a closed account'), journal: 'D3' });
  t.equal(transfer_rsp.unpackJson(closed.response).response_code, DEMO_RC.CLOSED);
  t.same(accounts(dbFile), { A001: '749.90', A002: '750.10', A003: '0.00' }, 'the debit made before the closed credit account was found is rolled back');
  t.match(journalRow(dbFile, 'D3'), { status: 'REFUSED', failed_phase: 'business-process/accounting' });

  const same = await app.call({ request: req('A001', 'A001', '1.00'), journal: 'D4' });
  t.equal(transfer_rsp.unpackJson(same.response).response_code, DEMO_RC.BAD_VALUES);
  t.equal(journalRow(dbFile, 'D4'), undefined, 'refused in before-trans: no journal row');

  const bad = await app.call({ request: '{"amount":"1.234","from_account":"A001","to_account":"A002"}', journal: 'D5' });
  t.equal(bad.appRc, 40, 'a request that does not match its declaration: RECEIVER_RC.BAD_REQUEST');
  t.ok(bad.log.some((l) => l.level === 'error' && /IBP_ERR_MSG_FIELD: message transfer_req field amount/.test(l.msg)), 'the typed error names the field in the app log');
});

t.test('end to end: the generated ibac client stub and the HTTP adapter, on a real ibas', async (t) => {
  // a real ibas (manager, workers, the JS loader) on its node's config space; ibac reads the same space
  const srv = await setupIbas(t, { maxCount: 2, apps: [{ app: 'demo_transfer', bin: 'demo_transfer.mjs', timeout: 10 }] });
  fs.copyFileSync(APP_FILE, path.join(srv.home, 'so', 'demo_transfer.mjs'));
  await srv.start();
  await waitWorkers(srv, 2);
  const env = createEnvironment({ config: srv.ibmaConf });
  t.teardown(() => env.destroy());
  const client = demo_transfer_client(env);
  const dbFile = path.join(srv.home, 'demo_transfer.db');
  const BANK = NODE;

  const first = await waitFor('a first transfer', async () => {
    try {
      return await client.call(BANK, { ...transfer_req.init(), from_account: 'A001', to_account: 'A002', amount: '100.00' });
    } catch {
      return undefined;
    }
  }, 30_000, 200);
  t.equal(first.response_code, 0, 'through ibac: code 0');
  t.equal(first.from_balance, '900.00');
  t.equal(first.to_balance, '600.00');
  t.same(accounts(dbFile), { A001: '900.00', A002: '600.00', A003: '0.00' }, 'committed in the server\'s database');
  t.match(journalRow(dbFile, first.journal), { status: 'OK' }, 'journal row under the ibac journal number');

  const refused = await client.call(BANK, { ...transfer_req.init(), from_account: 'A002', to_account: 'A001', amount: '600.01' });
  t.equal(refused.response_code, DEMO_RC.FUNDS);
  t.same(accounts(dbFile), { A001: '900.00', A002: '600.00', A003: '0.00' }, 'rolled back: unchanged');
  await t.rejects(client.call(BANK, { ...transfer_req.init(), amount: 'ten' }), { code: 'IBP_ERR_MSG_FIELD' }, 'a bad request never leaves the client');

  const viaHttp = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = http.request({ host: srv.ip, port: srv.port, path: '/ibp/demo_transfer', method: 'POST', agent: false, headers: { 'X-Ibp-Journal': 'HTTP1' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.setTimeout(20_000, () => r.destroy(new Error('http timeout')));
    r.on('error', reject);
    r.end(req('A002', 'A001', '0.50'));
  });
  t.equal(viaHttp.status, 200);
  t.match(transfer_rsp.unpackJson(viaHttp.body), { response_code: 0, journal: 'HTTP1', from_balance: '599.50', to_balance: '900.50' }, 'through HTTP: code 0');
  t.match(journalRow(dbFile, 'HTTP1'), { status: 'OK' });
});

/**
 * Phased templates (ibts) against a real SQLite file database (better-sqlite3): each variant
 * (normal, send-ahead, linked), commit per phase group, rollback on a failed check or a failed
 * posting (the accounts unchanged, read back through a second connection), commit of a refusal
 * in the public checks, an error jumping straight to after-trans, the journal row registered
 * before and updated after, a database error at a boundary (a deferred foreign key failing
 * COMMIT) as IBP_ERR_TS_DB.
 */
import t from 'tap';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqlite, sqliteJournal, type SqliteDatabase, type SqliteTransactionDb } from '../../lib/appfw/db/sqlite.js';
import { FUNC, funcArray, type TransFunc } from '../../lib/appfw/tm/tree.js';
import type { TmLog, TransEnv } from '../../lib/appfw/tm/env.js';
import { executeSchedule, JOURNAL_STATUS, DEFAULT_FAILURE, type Schedule, type ScheduleRun, type TemplateVariant } from '../../lib/appfw/ts/template.js';

const journal = sqliteJournal('jnl');

function setup(t: Tap.Test): { db: SqliteTransactionDb; file: string; peek: SqliteDatabase } {
  const file = path.join(t.testdir(), 'bank.db');
  const db = openSqlite(file);
  db.handle.exec(`
    CREATE TABLE account (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE counter (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TABLE posting (id INTEGER PRIMARY KEY, account TEXT NOT NULL REFERENCES account(id) DEFERRABLE INITIALLY DEFERRED, amount INTEGER NOT NULL);
    INSERT INTO account VALUES ('A', 100), ('B', 0);
    INSERT INTO counter VALUES ('pc_refusals', 0), ('after', 0);`);
  journal.create(db.handle);
  const peek = new Database(file, { readonly: true });
  t.teardown(() => { peek.close(); db.close(); });
  return { db, file, peek };
}

const balances = (peek: SqliteDatabase) => Object.fromEntries((peek.prepare('SELECT id, balance FROM account ORDER BY id').all() as { id: string; balance: number }[]).map((r) => [r.id, r.balance]));
const row = (peek: SqliteDatabase, j: string) => peek.prepare('SELECT * FROM jnl WHERE journal = ?').get(j) as Record<string, unknown> | undefined;

function log(): TmLog & { lines: string[] } {
  const lines: string[] = [];
  const put = (l: string) => (m: string) => void lines.push(`${l} ${m}`);
  return { lines, debug: put('debug'), info: put('info'), warn: put('warn'), error: put('error') };
}

const sql = (text: string, ...args: unknown[]): TransFunc => Object.defineProperty((te: TransEnv) => { te.dbAs<SqliteDatabase>().prepare(text).run(...args); return 0; }, 'name', { value: text.split(' ').slice(0, 2).join('_') });
const refuse = (code: number, desc: string): TransFunc => Object.defineProperty((te: TransEnv) => { te.setResponse(code, desc); return code; }, 'name', { value: `refuse_${code}` });
const mark = (seen: string[], name: string, rc = 0): TransFunc => Object.defineProperty(() => { seen.push(name); return rc; }, 'name', { value: name });
const fa = (desc: string, ...fns: TransFunc[]) => funcArray(desc, fns.map((f, i) => FUNC(`${desc} ${i}`, f)));

/** The transfer A → B of 30 as phases: debit in business processing, credit in accounting. */
function schedule(seen: string[], over: Partial<Schedule> = {}): Schedule {
  return {
    beforeTrans: fa('bt', mark(seen, 'bt')),
    publicCheck: { channel: fa('pc', mark(seen, 'pc')) },
    businessCheck: { account: fa('bc', mark(seen, 'bc')) },
    businessProcess: { account: fa('bp', mark(seen, 'bp'), sql("UPDATE account SET balance = balance - 30 WHERE id = 'A'")) },
    accounting: fa('ap', mark(seen, 'ap'), sql("UPDATE account SET balance = balance + 30 WHERE id = 'B'")),
    afterTrans: fa('at', mark(seen, 'at'), sql("UPDATE counter SET n = n + 1 WHERE name = 'after'")),
    ...over,
  };
}

function run(db: SqliteTransactionDb, variant: TemplateVariant, s: Schedule, j: string, extra: Partial<ScheduleRun> = {}) {
  const rsp = { code: -1, desc: '' };
  const l = log();
  const r = executeSchedule({ variant, schedule: s, transCode: 'XFER', journal: j, db, journalHooks: journal.hooks, log: l, onResponse: (code, desc) => Object.assign(rsp, { code, desc }), ...extra });
  return { ...r, rsp, log: l };
}

t.test('normal: a good transfer commits, answers 0, journal OK, trace logged at debug', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  const r = run(db, 'normal', schedule(seen), 'J1');
  t.equal(r.rc, 0);
  t.same(r.rsp, { code: 0, desc: 'transaction succeeded' });
  t.same(seen, ['bt', 'pc', 'bc', 'bp', 'ap', 'at']);
  t.same(balances(peek), { A: 70, B: 30 });
  t.match(row(peek, 'J1'), { trans_code: 'XFER', status: 'OK', response_code: 0, failed_phase: '' });
  t.ok(r.log.lines.some((l) => /^debug tm: .*\[ap 1\] UPDATE_account rc=0/.test(l)), 'the function trace is in the log at debug');
  t.ok(r.log.lines.some((l) => /^debug ts: commit \[business-process\]/.test(l)));
  t.notOk(db.handle.inTransaction, 'no transaction left open');
});

t.test('normal: a failed business check rolls back, the accounts unchanged, straight to after-trans', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  const s = schedule(seen, { businessCheck: { account: fa('bc', sql("UPDATE account SET balance = 0 WHERE id = 'A'"), refuse(1004, 'insufficient funds')) } });
  const r = run(db, 'normal', s, 'J2');
  t.equal(r.rc, 1004);
  t.same(r.rsp, { code: 1004, desc: 'insufficient funds' }, 'the function\'s response is kept');
  t.same(seen, ['bt', 'pc', 'at'], 'business processing and accounting skipped, after-trans ran');
  t.same(balances(peek), { A: 100, B: 0 }, 'the write made during the checks was rolled back');
  t.match(row(peek, 'J2'), { status: 'REFUSED', response_code: 1004, response_desc: 'insufficient funds', failed_phase: 'business-check/account' });
  t.equal((peek.prepare("SELECT n FROM counter WHERE name = 'after'").get() as { n: number }).n, 1, 'after-trans committed its own work');
});

t.test('normal: a failure in accounting rolls back the debit of business processing (one transaction)', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  const r = run(db, 'normal', schedule(seen, { accounting: fa('ap', sql("UPDATE account SET balance = balance + 30 WHERE id = 'B'"), refuse(1005, 'account closed')) }), 'J3');
  t.equal(r.rc, 1005);
  t.same(balances(peek), { A: 100, B: 0 });
  t.match(row(peek, 'J3'), { status: 'REFUSED', failed_phase: 'business-process/accounting' });
});

t.test('normal: a refusal in the public checks commits what they did; a system error rolls back', async (t) => {
  const { db, peek } = setup(t);
  const r = run(db, 'normal', schedule([], { publicCheck: { operator: fa('pc', sql("UPDATE counter SET n = n + 1 WHERE name = 'pc_refusals'"), refuse(1002, 'operator locked')) } }), 'J4');
  t.equal(r.rc, 1002);
  t.equal((peek.prepare("SELECT n FROM counter WHERE name = 'pc_refusals'").get() as { n: number }).n, 1, 'the refusal counter was committed');
  const thrown = run(db, 'normal', schedule([], { publicCheck: { operator: fa('pc', sql("UPDATE counter SET n = n + 1 WHERE name = 'pc_refusals'"), () => { throw new Error('boom'); }) } }), 'J5');
  t.equal(thrown.rc, -1);
  t.same(thrown.rsp, DEFAULT_FAILURE, 'no function set a response: the default failure');
  t.equal((peek.prepare("SELECT n FROM counter WHERE name = 'pc_refusals'").get() as { n: number }).n, 1, 'a throw rolled the counter back');
  t.match(row(peek, 'J5'), { status: 'FAILED', response_code: 999999, failed_phase: 'public-check/operator' });
});

t.test('before-trans failing ends the transaction: no journal row', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  const r = run(db, 'normal', schedule(seen, { beforeTrans: fa('bt', refuse(1001, 'bad values')) }), 'J6');
  t.equal(r.rc, 1001);
  t.same(seen, []);
  t.equal(row(peek, 'J6'), undefined);
});

t.test('a database error at a phase boundary (COMMIT refused by a deferred foreign key) is IBP_ERR_TS_DB and rolls back', async (t) => {
  const { db, peek } = setup(t);
  const r = run(db, 'normal', schedule([], { accounting: fa('ap', sql("INSERT INTO posting (account, amount) VALUES ('NOPE', 30)")) }), 'J7');
  t.equal(r.rc, -2);
  t.equal(r.te.lastError?.code, 'IBP_ERR_TS_DB');
  t.match(r.te.lastError?.message, /database commit failed in phase business-process: FOREIGN KEY/);
  t.same(balances(peek), { A: 100, B: 0 }, 'the debit was rolled back with the failed commit');
  t.equal((peek.prepare('SELECT count(*) AS n FROM posting').get() as { n: number }).n, 0);
  t.match(row(peek, 'J7'), { status: 'FAILED', failed_phase: 'business-process' });
  t.notOk(db.handle.inTransaction);
});

t.test('send-ahead: the response leaves before accounting, which then commits on its own', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  let sentWith: { code: number; balances: Record<string, number> } | undefined;
  const r = run(db, 'send-ahead', schedule(seen), 'J8', { sendAhead: (te) => { seen.push('SENT'); sentWith = { code: te.responseCode, balances: balances(peek) }; } });
  t.equal(r.rc, 0);
  t.same(seen, ['bt', 'pc', 'bc', 'bp', 'at', 'SENT', 'ap'], 'after-trans, the response, then accounting');
  t.same(sentWith, { code: 0, balances: { A: 70, B: 0 } }, 'answered 0 when the debit was committed and the credit not yet');
  t.same(balances(peek), { A: 70, B: 30 });
  t.match(row(peek, 'J8'), { status: 'OK' });

  let sentCode = -1;
  const failed = run(db, 'send-ahead', schedule([], { accounting: fa('ap', refuse(1009, 'ledger closed')) }), 'J9', { sendAhead: (te) => { sentCode = te.responseCode; } });
  t.equal(sentCode, 0, 'the client got its success answer before accounting ran');
  t.equal(failed.rc, 1009);
  t.match(row(peek, 'J9'), { status: JOURNAL_STATUS.ACCOUNTING_FAILED, failed_phase: 'accounting' }, 'the journal says accounting failed after the answer: reconcile');
  t.throws(() => run(db, 'send-ahead', schedule([]), 'J10'), { code: 'IBP_ERR_TS_TEMPLATE', message: /sendAhead/ });
});

t.test('linked: the outbound call runs with no database transaction open, before accounting; a failed accounting reverses it', async (t) => {
  const { db, peek } = setup(t);
  const seen: string[] = [];
  const outbound: TransFunc = (te) => { seen.push(`linked open=${te.dbAs<SqliteDatabase>().inTransaction}`); return 0; };
  const r = run(db, 'linked', schedule(seen, { linked: fa('lk', outbound) }), 'J11');
  t.equal(r.rc, 0);
  t.same(seen, ['bt', 'pc', 'bc', 'bp', 'linked open=false', 'ap', 'at']);
  t.same(balances(peek), { A: 70, B: 30 });

  const seen2: string[] = [];
  const r2 = run(db, 'linked', schedule(seen2, { linked: fa('lk', mark(seen2, 'call')), reverseLinked: fa('rv', mark(seen2, 'reverse')), accounting: fa('ap', refuse(1005, 'closed')) }), 'J12');
  t.equal(r2.rc, 1005);
  t.same(seen2, ['bt', 'pc', 'bc', 'bp', 'call', 'reverse', 'at']);
  t.match(row(peek, 'J12'), { status: 'REFUSED', failed_phase: 'accounting' });

  const r3 = run(db, 'linked', schedule([], { linked: fa('lk', mark([], 'call')), reverseLinked: fa('rv', refuse(1, 'peer down')), accounting: fa('ap', refuse(1005, 'closed')) }), 'J13');
  t.equal(r3.rc, 1005);
  t.match(row(peek, 'J13'), { status: JOURNAL_STATUS.REVERSAL_FAILED }, 'a failed reversal is in the journal for escalation');

  const before = balances(peek);
  const r4 = run(db, 'linked', schedule([], { linked: fa('lk', refuse(2001, 'peer refused')) }), 'J14');
  t.equal(r4.rc, 2001);
  t.same(balances(peek), { A: (before.A as number) - 30, B: before.B }, 'business processing committed before the call (its reversal is the app\'s); nothing was credited');
  t.match(row(peek, 'J14'), { status: 'REFUSED', failed_phase: 'linked' });
  t.throws(() => run(db, 'normal', schedule([], { linked: fa('lk') }), 'J15'), { code: 'IBP_ERR_TS_TEMPLATE' });
});

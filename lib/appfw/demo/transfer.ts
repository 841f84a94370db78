/**
 * demo_transfer, the example of the app framework (docs/app-framework.md): a transfer between two
 * accounts of a SQLite database, written with all three layers.
 *
 *   messages   demo_transfer.dsc → demo_transfer.dsc.ts (transfer_req / transfer_rsp, client stub)
 *   functions  one function tree per phase (below), blocks on the structure bus
 *   template   the normal phased template (executeSchedule), the journal table demo_journal
 *
 * Response codes: 0 done; 1001 bad request values; 1002 channel not allowed; 1003 unknown
 * account; 1004 insufficient funds; 1005 the credited account is closed (found while posting,
 * after the debit: the whole posting rolls back); 999999 failed.
 *
 * The database is $IBP_HOME/demo_transfer.db, or the node's KV `demo_transfer.db`. init creates
 * the tables and, when empty, opens the demo accounts (DEMO_ACCOUNTS).
 */
import path from 'node:path';
import type { AppContext } from '../../app/api.js';
import { Home } from '../../home.js';
import { openSqlite, sqliteJournal, type SqliteDatabase, type SqliteTransactionDb } from '../db/sqlite.js';
import { receiveMessage } from '../msgv/receiver.js';
import { decimalToScaled, scaledToDecimal } from '../msgv/scalar.js';
import { defineBlock, type TransEnv } from '../tm/env.js';
import { FUNC, FUNC_PARA, funcArray, IF_FUNC_THEN, ELSE, ENDIF } from '../tm/tree.js';
import { executeSchedule, type Schedule } from '../ts/template.js';
import { transfer_req, transfer_rsp } from './demo_transfer.dsc.js';

export const DEMO_RC = { OK: 0, BAD_VALUES: 1001, CHANNEL: 1002, NO_ACCOUNT: 1003, FUNDS: 1004, CLOSED: 1005 } as const;

/** Accounts opened in an empty database: [id, balance, status]. */
export const DEMO_ACCOUNTS: ReadonlyArray<readonly [string, string, 'OPEN' | 'CLOSED']> = [
  ['A001', '1000.00', 'OPEN'],
  ['A002', '500.00', 'OPEN'],
  ['A003', '0.00', 'CLOSED'],
];

const SCALE = 2;
export const JOURNAL_TABLE = 'demo_journal';
const journal = sqliteJournal(JOURNAL_TABLE);

/** Blocks of the structure bus. */
export const REQ = defineBlock<transfer_req>('transfer_req');
export const RSP = defineBlock<transfer_rsp>('transfer_rsp');
interface Posting { from: string; to: string; amount: bigint; fromBalance: bigint; toBalance: bigint; toStatus: string }
const POSTING = defineBlock<Posting>('posting');

function refuse(te: TransEnv, code: number, desc: string): number {
  te.setResponse(code, desc);
  return code;
}

// ---- before-trans
function check_values(te: TransEnv): number {
  const req = te.getBlock(REQ);
  if (req.from_account === '' || req.to_account === '') return refuse(te, DEMO_RC.BAD_VALUES, 'both accounts are needed');
  if (req.from_account === req.to_account) return refuse(te, DEMO_RC.BAD_VALUES, 'the two accounts are the same');
  if (decimalToScaled(req.amount, SCALE) <= 0n) return refuse(te, DEMO_RC.BAD_VALUES, 'the amount must be positive');
  return 0;
}

// ---- public checks
function check_channel(te: TransEnv, para?: string): number {
  const allowed = (para ?? '').split(',');
  const channel = te.getBlock(REQ).channel;
  return allowed.includes(channel) ? 0 : refuse(te, DEMO_RC.CHANNEL, `channel ${channel} may not transfer`);
}

// ---- business checks
function balanceOf(db: SqliteDatabase, id: string): { balance: bigint; status: string } | undefined {
  return db.prepare('SELECT balance, status FROM demo_account WHERE id = ?').safeIntegers(true).get(id) as { balance: bigint; status: string } | undefined;
}

function load_accounts(te: TransEnv): number {
  const req = te.getBlock(REQ);
  const db = te.dbAs<SqliteDatabase>();
  const from = balanceOf(db, req.from_account);
  const to = balanceOf(db, req.to_account);
  if (!from || from.status !== 'OPEN') return refuse(te, DEMO_RC.NO_ACCOUNT, `account ${req.from_account} is unknown or closed`);
  if (!to) return refuse(te, DEMO_RC.NO_ACCOUNT, `account ${req.to_account} is unknown`);
  te.appendBlock(POSTING, { from: req.from_account, to: req.to_account, amount: decimalToScaled(req.amount, SCALE), fromBalance: from.balance, toBalance: to.balance, toStatus: to.status });
  return 0;
}

function check_funds(te: TransEnv): number {
  const p = te.getBlock(POSTING);
  return p.fromBalance >= p.amount ? 0 : refuse(te, DEMO_RC.FUNDS, `insufficient funds on ${p.from}`);
}

// ---- accounting (one database transaction with business processing)
function debit(te: TransEnv): number {
  const p = te.getBlock(POSTING);
  te.dbAs<SqliteDatabase>().prepare('UPDATE demo_account SET balance = balance - ? WHERE id = ?').run(p.amount, p.from);
  return 0;
}

function credit(te: TransEnv): number {
  const p = te.getBlock(POSTING);
  // checked here, after the debit, on purpose: a refusal at this point rolls the debit back
  if (p.toStatus !== 'OPEN') return refuse(te, DEMO_RC.CLOSED, `account ${p.to} is closed`);
  te.dbAs<SqliteDatabase>().prepare('UPDATE demo_account SET balance = balance + ? WHERE id = ?').run(p.amount, p.to);
  return 0;
}

function memo_is_empty(te: TransEnv): number {
  return te.getBlock(REQ).memo === '' ? 1 : 0;
}

function default_memo(te: TransEnv): number {
  te.getBlock(REQ).memo = `transfer to ${te.getBlock(REQ).to_account}`;
  return 0;
}

function keep_memo(): number {
  return 0;
}

function read_balances(te: TransEnv): number {
  const p = te.getBlock(POSTING);
  const rsp = te.getBlock(RSP);
  const db = te.dbAs<SqliteDatabase>();
  rsp.from_balance = scaledToDecimal((balanceOf(db, p.from) as { balance: bigint }).balance, SCALE);
  rsp.to_balance = scaledToDecimal((balanceOf(db, p.to) as { balance: bigint }).balance, SCALE);
  return 0;
}

/** The schedule: one function tree per phase. */
export const SCHEDULE: Schedule = {
  beforeTrans: funcArray('before-trans', [FUNC('check request values', check_values)]),
  publicCheck: { channel: funcArray('channel check', [FUNC_PARA('channel allowed', check_channel, 'WEB,ATM,BRANCH')]) },
  businessCheck: { account: funcArray('account check', [FUNC('load accounts', load_accounts), FUNC('check funds', check_funds)]) },
  businessProcess: {
    business: funcArray('memo', [
      IF_FUNC_THEN('memo given?', memo_is_empty), // the IF body runs when the function reports (1 = empty)
      FUNC('default memo', default_memo),
      ELSE,
      FUNC('keep memo', keep_memo),
      ENDIF,
    ]),
  },
  accounting: funcArray('accounting', [FUNC('debit', debit), FUNC('credit', credit), FUNC('read balances', read_balances)]),
};

/** Creates the tables and opens the demo accounts in an empty database. */
export function prepareDemoDatabase(db: SqliteDatabase): void {
  db.exec(`CREATE TABLE IF NOT EXISTS demo_account (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0), status TEXT NOT NULL)`);
  journal.create(db);
  const insert = db.prepare('INSERT OR IGNORE INTO demo_account (id, balance, status) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (const [id, balance, status] of DEMO_ACCOUNTS) insert.run(id, decimalToScaled(balance, SCALE), status);
  }).immediate();
}

/** Where the demo database lives for this node. */
export function demoDatabaseFile(ctx: Pick<AppContext, 'kv'>): string {
  return ctx.kv('demo_transfer.db') ?? new Home().resolve('demo_transfer.db');
}

let db: SqliteTransactionDb | undefined;

/** Runs one transfer on an open database (the app's main, and tests). */
export function transfer(ctx: Pick<AppContext, 'request' | 'write' | 'sendAhead' | 'log' | 'app' | 'journal'>, database: SqliteTransactionDb): number {
  return receiveMessage(ctx, transfer_req, transfer_rsp, (req, rsp) => {
    rsp.journal = ctx.journal;
    executeSchedule({
      variant: 'normal',
      schedule: SCHEDULE,
      transCode: ctx.app,
      journal: ctx.journal || `local-${process.pid}-${Date.now()}`,
      db: database,
      journalHooks: journal.hooks,
      log: ctx.log,
      setup: (te) => {
        te.appendBlock(REQ, req);
        te.appendBlock(RSP, rsp);
      },
      onResponse: (code, desc) => {
        rsp.response_code = code;
        rsp.response_desc = desc;
      },
    });
    return 0;
  });
}

// ---- the app's entry points (ibas/apps/demo_transfer.mts re-exports them)

export function init(ctx: AppContext): number {
  const file = demoDatabaseFile(ctx);
  db = openSqlite(path.resolve(file));
  prepareDemoDatabase(db.handle);
  ctx.log.info(`demo_transfer: database ${file}`);
  return 0;
}

export function main(ctx: AppContext): number {
  if (!db) throw new Error('demo_transfer: init did not run');
  return transfer(ctx, db);
}

export function clean(): number {
  db?.close();
  db = undefined;
  return 0;
}

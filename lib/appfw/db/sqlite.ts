/**
 * The SQLite adapter of the phased templates: a {@link TransactionDb} over better-sqlite3 (a
 * maintained, synchronous binding: it fits the synchronous app entry points of an ibas worker),
 * and a journal table with the register / update hooks.
 *
 *   const db = openSqlite('/path/demo.db');             // WAL, busy timeout, foreign keys on
 *   const journal = sqliteJournal('demo_journal');       // table created by journal.create(db.handle)
 *   executeSchedule({ db, journalHooks: journal.hooks, … });
 *
 * One connection per worker process, one transaction at a time (a worker runs one call at a
 * time); BEGIN IMMEDIATE takes the write lock at the phase boundary, so two workers never
 * deadlock half-way through a phase, and the busy timeout makes the second one wait.
 */
import Database from 'better-sqlite3';
import { IbpError } from '../../errors.js';
import { FUNC, funcArray } from '../tm/tree.js';
import type { TransEnv } from '../tm/env.js';
import { JOURNAL, type JournalHooks } from '../ts/template.js';
import type { TransactionDb } from '../ts/database.js';

export type SqliteDatabase = Database.Database;

export class SqliteTransactionDb implements TransactionDb {
  readonly handle: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.handle = db;
  }

  begin(): void {
    if (this.handle.inTransaction) throw new Error('a transaction is already open: the previous phase did not commit or roll back');
    this.handle.exec('BEGIN IMMEDIATE');
  }

  commit(): void {
    this.handle.exec('COMMIT');
  }

  rollback(): void {
    if (this.handle.inTransaction) this.handle.exec('ROLLBACK');
  }

  close(): void {
    this.rollback();
    this.handle.close();
  }
}

export interface SqliteOptions {
  /** ms a writer waits for another process's lock (default 5000). */
  busyTimeoutMs?: number;
  readonly?: boolean;
}

/** Opens (creating if needed) a database file for the templates. */
export function openSqlite(file: string, opts: SqliteOptions = {}): SqliteTransactionDb {
  const db = new Database(file, { timeout: opts.busyTimeoutMs ?? 5000, readonly: opts.readonly ?? false });
  if (!opts.readonly) db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  return new SqliteTransactionDb(db);
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export interface SqliteJournal {
  readonly table: string;
  readonly hooks: JournalHooks;
  /** CREATE TABLE IF NOT EXISTS of the journal table. */
  create(db: SqliteDatabase): void;
}

/**
 * A journal table: one row per transaction, inserted (status REGISTERED) before the checks and
 * updated (final status, response, failed phase) after after-trans.
 */
export function sqliteJournal(table: string): SqliteJournal {
  if (!TABLE_NAME.test(table)) throw new IbpError('IBP_ERR_TS_TEMPLATE', { template: 'sqliteJournal', detail: `table name ${table} is not an identifier` });
  function journal_register(te: TransEnv): number {
    const j = te.getBlock(JOURNAL);
    te.dbAs<SqliteDatabase>()
      .prepare(`INSERT INTO ${table} (journal, trans_code, status, response_code, response_desc, failed_phase, created_at, updated_at) VALUES (?, ?, ?, 0, '', '', ?, ?)`)
      .run(j.journal, j.transCode, j.status, Date.now(), Date.now());
    return 0;
  }
  function journal_update(te: TransEnv): number {
    const j = te.getBlock(JOURNAL);
    const r = te.dbAs<SqliteDatabase>()
      .prepare(`UPDATE ${table} SET status = ?, response_code = ?, response_desc = ?, failed_phase = ?, updated_at = ? WHERE journal = ?`)
      .run(j.status, j.responseCode, j.responseDesc, j.failedPhase, Date.now(), j.journal);
    return r.changes === 1 ? 0 : -1;
  }
  return {
    table,
    hooks: {
      register: funcArray('register journal', [FUNC('insert journal row', journal_register)]),
      update: funcArray('update journal', [FUNC('update journal row', journal_update)]),
    },
    create(db) {
      db.exec(`CREATE TABLE IF NOT EXISTS ${table} (
        journal TEXT PRIMARY KEY, trans_code TEXT NOT NULL, status TEXT NOT NULL,
        response_code INTEGER NOT NULL, response_desc TEXT NOT NULL, failed_phase TEXT NOT NULL,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`);
    },
  };
}

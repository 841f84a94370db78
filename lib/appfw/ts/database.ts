/**
 * The database-transaction interface of the phased templates (IBP's DBBEGINWORK / DBCOMMIT /
 * DBROLLBACK around each phase group). Synchronous, like the app entry points of an ibas worker.
 * lib/appfw/db/sqlite.ts implements it over better-sqlite3; any other embedded or client
 * database fits by implementing these three calls (and exposing its handle to TM functions).
 */
export interface TransactionDb {
  /** Opens a database transaction (a phase boundary). */
  begin(): void;
  commit(): void;
  rollback(): void;
  /** What TM functions get from te.dbAs<…>() (e.g. the better-sqlite3 Database). */
  readonly handle: unknown;
}

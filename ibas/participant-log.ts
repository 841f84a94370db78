/**
 * The participant log of two-phase commit (docs/ibas.md "Two-phase commit you can recover"):
 * one small JSON file per branch — a leg of a global transaction: its gtrid and its journal, XA's
 * gtrid + branch qualifier — in `$IBP_HOME/tlog/`, shared by every worker of the server and surviving
 * any crash. A multi-transaction may have several legs on one server (two apps of a node, or the
 * same app twice): each has its own record, prepared and decided on its own. The file is
 * `<gtrid>.<first 16 hex of sha256(journal)>.json` ({@link branchFileName}: safe whatever the
 * journal holds); the journal itself is kept in the record.
 *
 *   PREPARED     written when the app's prepare (somain) returned 0, BEFORE the yes vote is
 *                answered: temp file + fsync + link(2) (an exclusive create: it fails when a
 *                record exists) + fsync of the folder
 *   COMMITTED /  written when the app's socommit/sorollback returned (any worker, any time),
 *   ROLLED_BACK  before the answer: write-file-atomic (temp + fsync + rename) + fsync of the folder;
 *                it keeps the app's rc and body so a repeated decision is answered the same
 *   ROLLED_BACK  also as a tombstone: a ROLLBACK for a branch never prepared here (presumed abort
 *   (tombstone)  by a coordinator's recovery) is remembered, so a prepare still running when it
 *                came votes no instead of leaving a transaction in doubt forever; an operator's
 *                abort of a gtrid with no branch here leaves one for the empty journal, which
 *                stands for every branch of the gtrid
 *
 * A branch is in doubt while its record says PREPARED. Deciding one takes its
 * `<gtrid>.<hex>.lock` (O_EXCL, holding the pid; a lock of a dead process is taken over), so two
 * workers never run the app's commit/rollback for the same branch at once. Decided records older than
 * {@link KEEP_DECIDED_MS} are removed by {@link ParticipantLog.compact} (worker start).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { IbpError } from '../lib/errors.js';
import { createFileExclusive, EXCLUSIVE_TEMP, fsyncDir } from '../lib/durable-file.js';
import { isAlive } from '../lib/pidfile.js';
import { checkGtrid } from '../lib/gtrid.js';

export type ParticipantState = 'PREPARED' | 'COMMITTED' | 'ROLLED_BACK';

export interface ParticipantRecord {
  gtrid: string;
  state: ParticipantState;
  app: string;
  journal: string;
  /** The coordinator's node (the client node of the prepare). */
  clientNode: string;
  clientIp: string;
  /** ms since epoch. */
  preparedAt: number;
  decidedAt?: number;
  /** Who decided: the coordinator (on the prepare's connection or another), an operator, or a tombstone. */
  by?: 'coordinator' | 'operator' | 'presumed-abort';
  /** What the app's socommit/sorollback returned, and its response (base64). */
  appRc?: number;
  body?: string;
}

/** Decided records are kept this long (a coordinator may repeat a decision it did not see answered). */
export const KEEP_DECIDED_MS = 24 * 3600 * 1000;

/**
 * The file name (without extension) of a branch's record and lock: the gtrid (checked: never a
 * path) and the first 16 hex digits of sha256(journal), whatever characters the journal holds.
 */
export function branchFileName(gtrid: string, journal: string): string {
  return `${checkGtrid(gtrid)}.${createHash('sha256').update(journal, 'utf8').digest('hex').slice(0, 16)}`;
}

export class ParticipantLog {
  readonly dir: string;

  constructor(homeRoot: string) {
    this.dir = path.join(homeRoot, 'tlog');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  #file(gtrid: string, journal: string): string {
    return path.join(this.dir, `${branchFileName(gtrid, journal)}.json`);
  }

  #fail(file: string, e: unknown): never {
    throw new IbpError('IBP_ERR_TX_LOG', { file, detail: (e as Error).message });
  }

  /** The record of the branch (gtrid, journal), undefined when there is none. */
  get(gtrid: string, journal: string): ParticipantRecord | undefined {
    const file = this.#file(gtrid, journal);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.#fail(file, e);
    }
    try {
      return JSON.parse(text) as ParticipantRecord;
    } catch (e) {
      // written whole by rename or link: a file that does not parse was altered by hand
      this.#fail(file, e);
    }
  }

  /**
   * Create the first record of a branch (PREPARED, or a ROLLED_BACK tombstone) durably. False when
   * a record of the branch exists already (then nothing was written).
   */
  create(rec: ParticipantRecord): boolean {
    const file = this.#file(rec.gtrid, rec.journal);
    try {
      return createFileExclusive(file, JSON.stringify(rec), 0o600, true);
    } catch (e) {
      this.#fail(file, e);
    }
  }

  /** Replace a branch's record durably (the decision carried out). */
  update(rec: ParticipantRecord): void {
    const file = this.#file(rec.gtrid, rec.journal);
    try {
      writeFileAtomic.sync(file, JSON.stringify(rec), { fsync: true, mode: 0o600 });
      fsyncDir(this.dir);
    } catch (e) {
      this.#fail(file, e);
    }
  }

  /**
   * Hold the branch's decision lock for `fn`. Another live process holding it: IBP_ERR_TX_BUSY; a
   * lock left by a dead process is taken over. (Two processes taking over the same dead lock at
   * the same instant could both get it: then the app's commit/rollback runs twice with the same
   * decision, which apps must tolerate anyway — see docs/apps.md.)
   */
  withLock<T>(gtrid: string, journal: string, fn: () => T): T {
    const lock = path.join(this.dir, `${branchFileName(gtrid, journal)}.lock`);
    // the lock appears with its pid already in it (temp file + link): never an empty lock to misjudge
    for (let attempt = 0; ; attempt++) {
      let created: boolean;
      try {
        created = createFileExclusive(lock, String(process.pid), 0o600, false);
      } catch (e) {
        this.#fail(lock, e);
      }
      if (created) break;
      let pid = 0;
      try {
        pid = Number(fs.readFileSync(lock, 'utf8')) || 0;
      } catch {
        // released meanwhile: try again
      }
      if (attempt < 2 && (pid === 0 || (pid !== process.pid && !isAlive(pid)))) {
        if (pid !== 0) fs.rmSync(lock, { force: true }); // its holder died: take it over
        continue;
      }
      throw new IbpError('IBP_ERR_TX_BUSY', { gtrid: journal === '' ? gtrid : `${gtrid} (journal ${journal})`, pid });
    }
    try {
      return fn();
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }

  /** Every record (in doubt and decided), oldest prepare first. Unreadable files are skipped. */
  list(only: (name: string) => boolean = () => true): ParticipantRecord[] {
    const out: ParticipantRecord[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.json') || !only(name)) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as ParticipantRecord);
      } catch {
        // removed meanwhile or altered by hand: `get` reports it when the branch is decided
      }
    }
    return out.sort((a, b) => a.preparedAt - b.preparedAt);
  }

  /** Every record of one gtrid (its branches here, tombstones included), oldest prepare first. */
  branches(gtrid: string): ParticipantRecord[] {
    checkGtrid(gtrid);
    return this.list((name) => name.startsWith(`${gtrid}.`)).filter((r) => r.gtrid === gtrid);
  }

  /** Branches in doubt here: prepared (voted yes), not decided. */
  inDoubt(): ParticipantRecord[] {
    return this.list().filter((r) => r.state === 'PREPARED');
  }

  /** Remove decided records older than `keepMs` and temp files of dead writers; returns how many records went. */
  compact(keepMs = KEEP_DECIDED_MS, now = Date.now()): number {
    let removed = 0;
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      const tmp = EXCLUSIVE_TEMP.exec(name);
      if (tmp) {
        if (!isAlive(Number(tmp[1]))) fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as ParticipantRecord;
        if (rec.state !== 'PREPARED' && (rec.decidedAt ?? 0) + keepMs < now) {
          fs.rmSync(file, { force: true });
          removed++;
        }
      } catch {
        // leave what cannot be read for an operator
      }
    }
    return removed;
  }
}

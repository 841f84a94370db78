/**
 * The audit trail of two-phase commit operator commands (docs/ibas.md, docs/ibac.md): one JSON
 * line per command in `$IBP_HOME/log/tx-audit.log`, appended and fsync'ed before the command
 * reports: when, who (user, uid, pid), what (`in_doubt`, `commit_tx`, `abort_tx`, `recover`), the
 * gtrid and the result.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Home } from './home.js';

export interface AuditEntry {
  action: string;
  gtrid?: string;
  result: string;
  detail?: string;
}

export function auditFile(home: Home): string {
  return home.log('tx-audit.log');
}

/** Append one audit line (fsync). A trail that cannot be written fails the command (throws). */
export function audit(home: Home, e: AuditEntry): void {
  let user = '?';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry for the uid: the uid says who
  }
  const line = `${JSON.stringify({ time: new Date().toISOString(), user, uid: process.getuid?.() ?? -1, pid: process.pid, ...e })}\n`;
  const file = auditFile(home);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a', 0o600);
  try {
    fs.writeSync(fd, line);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

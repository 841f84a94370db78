/**
 * TEST HOOK — kill -9 at a named point of two-phase commit (the crash matrix,
 * test/ibac/2pc-crash-matrix.test.ts, and `npm run bench:2pc`).
 *
 *   IBP_TEST_CRASH_AT=<point>     read once when the process starts; at that point the process
 *                                 sends itself SIGKILL (no cleanup, no flush: a real crash)
 *   IBP_TEST_CRASH_ONCE=<file>    optional: crash only if this file can be created (O_EXCL), so
 *                                 of all processes sharing the environment (a server's workers,
 *                                 their replacements) exactly one crashes, once
 *   IBP_TEST_CRASH_ARM=<dir>      read once at start too: at any point P, crash if the file
 *                                 <dir>/P exists and this process is the one that removes it
 *                                 (unlink succeeds): a test arms one point of long-running
 *                                 servers for exactly one crash by creating that file
 *
 * Unset (production), {@link crashPoint} is one string comparison. The points:
 */
import fs from 'node:fs';
import path from 'node:path';

export const CRASH_POINTS = {
  /** ibac: the participants are logged (BEGIN), no prepare sent yet. */
  coordinator_before_prepare: 'ibac',
  /** ibas: the participant logged PREPARED and its yes vote left. */
  participant_after_vote: 'ibas',
  /** ibac: every vote is in, the decision is not logged yet. */
  coordinator_after_votes: 'ibac',
  /** ibac: the decision is logged, nothing sent yet. */
  coordinator_after_log: 'ibac',
  /** ibac: the decision went to the first participant only. */
  coordinator_mid_commit: 'ibac',
  /** ibas: the app committed and the participant log says so, the answer is not sent. */
  participant_after_commit: 'ibas',
} as const;
export type CrashPoint = keyof typeof CRASH_POINTS;

const WANT = process.env.IBP_TEST_CRASH_AT;
const ONCE = process.env.IBP_TEST_CRASH_ONCE;
const ARM = process.env.IBP_TEST_CRASH_ARM;

/** Die here (SIGKILL) when IBP_TEST_CRASH_AT names this point, or IBP_TEST_CRASH_ARM armed it. */
export function crashPoint(point: CrashPoint): void {
  if (ARM) {
    try {
      fs.unlinkSync(path.join(ARM, point));
      process.kill(process.pid, 'SIGKILL');
    } catch {
      // not armed (or another process took it)
    }
  }
  if (WANT !== point) return;
  if (ONCE) {
    try {
      fs.writeFileSync(ONCE, `${process.pid} ${point}\n`, { flag: 'wx' });
    } catch {
      return; // someone crashed here already
    }
  }
  process.kill(process.pid, 'SIGKILL');
}

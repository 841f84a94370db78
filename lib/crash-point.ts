/**
 * TEST HOOK — kill -9 at a named point of two-phase commit (the crash matrix,
 * test/ibac/2pc-crash-matrix.test.ts, and `npm run bench:2pc`).
 *
 *   IBP_TEST_CRASH_AT=<point>     read once when the process starts; at that point the process
 *                                 sends itself SIGKILL (no cleanup, no flush: a real crash)
 *   IBP_TEST_CRASH_ONCE=<file>    optional: crash only if this file can be created (O_EXCL), so
 *                                 of all processes sharing the environment (a server's workers,
 *                                 their replacements) exactly one crashes, once
 *
 * Unset (production), {@link crashPoint} is one string comparison. The points:
 */
import fs from 'node:fs';

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

/** Die here (SIGKILL) when IBP_TEST_CRASH_AT names this point. */
export function crashPoint(point: CrashPoint): void {
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

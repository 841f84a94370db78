/**
 * Process exit codes: the one table. Two contracts live here:
 *
 *   - a command-line tool's exit code by failure area (lib/errors.ts gives every error its code by
 *     these names; docs/ERRORS.md lists the numbers);
 *   - a worker's exit code read by its manager (after httpd's APEXIT_* and gunicorn's
 *     WORKER_BOOT_ERROR / APP_LOAD_ERROR): ibas/exit-class.ts turns each into a class and an
 *     action (respawn, back off, count against the restart budget, halt).
 *
 * docs/ARCHITECTURE.md §3 has the table; test/lib/exit-codes.test.ts keeps the two in step.
 * @enum
 */
export const EXIT = {
  /** Normal exit (recycled worker, graceful stop). */
  OK: 0,
  /** Generic failure of a command. */
  FAILURE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** The process could not initialise (config, home). Do not respawn in a loop. */
  INIT: 3,
  /** The registry refused the credential or the entitlement. */
  REG_AUTH: 4,
  /** The registry refused the change (not found, exists, invalid, in use). */
  REG_REFUSED: 5,
  /** The registry is unreachable or failed. */
  REG_UNAVAILABLE: 6,
  /** A daemon is (not) running, did not start or did not stop. */
  DAEMON: 7,
  /** Shared memory: a syscall, a layout, a capacity. */
  SHM: 8,
  /** ibas halted: its restart budget is exhausted (workers die at start). */
  CRASH_LOOP: 9,
  /** ibcmd refused the command. */
  CMD_REFUSED: 10,
  /** ibcmd is unreachable, busy or failed. */
  CMD_UNAVAILABLE: 11,
  /** A client call failed before anything ran (safe to retry). */
  CLIENT_FAILED: 12,
  /** A client call is SUSPICIOUS: the request may have run. */
  CLIENT_SUSPICIOUS: 13,
  /** A worker failed its own initialisation (attach shm, inherit listen fd). */
  CHILD_INIT: 0x13,
  /** The app package could not be loaded at boot. */
  APP_LOAD: 0x14,
  /** A worker is sick: the manager slows down respawning (capped doubling back-off). */
  CHILD_SICK: 0x17,
  /** A worker hit something fatal to the whole server: the manager stops (and exits with this code). */
  CHILD_FATAL: 0x1f,
} as const;

export type ExitName = keyof typeof EXIT;
export type ExitCode = (typeof EXIT)[ExitName];

const NAMES = new Map<number, ExitName>(Object.entries(EXIT).map(([k, v]) => [v, k as ExitName]));

/** "CHILD_SICK" for 0x17; "code N" for a number outside the table. */
export function exitName(code: number): string {
  return NAMES.get(code) ?? `code ${code}`;
}

/**
 * Process exit codes: a contract between a worker and its manager (after httpd's APEXIT_* and
 * gunicorn's WORKER_BOOT_ERROR / APP_LOAD_ERROR). The manager reads them in its reaper.
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
  /** A worker failed its own initialisation (attach shm, inherit listen fd). */
  CHILD_INIT: 0x13,
  /** A worker is sick: the manager should slow down respawning. */
  CHILD_SICK: 0x17,
  /** A worker hit something fatal to the whole server: the manager stops. */
  CHILD_FATAL: 0x1f,
  /** The app package could not be loaded at boot. */
  APP_LOAD: 0x14,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

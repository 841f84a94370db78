/**
 * The typed app API of IBP-TS (`import type { AppContext, AppModule } from 'ibp-ts/app'`): what a
 * JavaScript/TypeScript app package (an ES module, `--bin name.mjs`) exports and what the host
 * gives it. It is the TypeScript face of the C ABI in lib/native/ibp_app.h; both are checked
 * against ONE table, {@link APP_CONTEXT_TABLE} (lib/app/context-table.ts), by
 * test/lib/app-api.test.ts, so the two cannot drift.
 *
 * An app module:
 *
 *   import type { AppContext } from 'ibp-ts/app';
 *   export const abiVersion = 1;                       // optional: the ABI it was written for
 *   export function init(ctx: AppContext) { ... }      // optional: after load; non-zero refuses
 *   export function main(ctx: AppContext) {            // required: one transaction
 *     ctx.write(ctx.request);                          // the response
 *     return 0;                                        // 0 / undefined = ok, else an app error
 *   }
 *   export function clean(ctx: AppContext) { ... }     // optional: before unload
 *   export function commit(ctx) / rollback(ctx)        // optional: two-phase commit
 *
 * Threading and lifetime are those of a .so: the worker calls one entry point at a time and
 * nothing of a context outlives its call. An app that throws is answered with
 * IBP_ERR_APP_THREW; one that loops forever meets the worker's tier-1 alarm (the client gets
 * IBP_ERR_APP_TIMEOUT and the worker is replaced); one that allocates without bound ends its
 * worker at the heap limit (`app.js_max_heap_mb` of ibas.conf; the client gets IBP_ERR_APP_CRASH).
 */

/** IBP_APP_ABI_VERSION of lib/native/ibp_app.h. */
export const APP_ABI_VERSION = 1;
/** IBP_APP_OK: success. Any other return code is an app error passed to the client. */
export const APP_OK = 0;
/** IBP_APP_MAX_FILES: most attached files each way in one call. */
export const APP_MAX_FILES = 64;
/** IBP_APP_FILE_NAME_MAX: longest attached file name (bytes). */
export const APP_FILE_NAME_MAX = 255;

/** IBP_APP_PHASE_*: why the host is calling (ctx.phase). @enum */
export const APP_PHASE = { INIT: 1, MAIN: 2, COMMIT: 3, ROLLBACK: 4, CLEAN: 5 } as const;
export type AppPhase = (typeof APP_PHASE)[keyof typeof APP_PHASE];

/** IBP_APP_LOG_*: levels of ctx.log (the C side's ibp_log level argument). @enum */
export const APP_LOG_LEVEL = { DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 } as const;
export type AppLogLevel = (typeof APP_LOG_LEVEL)[keyof typeof APP_LOG_LEVEL];

/** The app's own log (lines carry app[<code>] in the worker's log). */
export interface AppLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** What an entry point gets: the ibp_app_ctx of lib/native/ibp_app.h, in TypeScript. */
export interface AppContext {
  /** IBP_APP_ABI_VERSION of the host. */
  readonly abiVersion: number;
  /** Why the host is calling (APP_PHASE). */
  readonly phase: AppPhase;
  /** The request bytes (empty outside main). */
  readonly request: Buffer;
  /** Append bytes (or UTF-8 text) to the response. */
  write(data: Uint8Array | string): void;
  /** Bytes of the response so far. */
  readonly responseLength: number;
  /** The folder of attached files ($IBP_HOME/file/...). */
  readonly fileDir: string;
  /** Plain names of the request files, each in fileDir. */
  readonly requestFiles: readonly string[];
  /** Response files added so far. */
  readonly responseFiles: readonly string[];
  /** Send fileDir/name back with the response (create the file first). Throws on a bad name, a duplicate or more than APP_MAX_FILES. */
  addFile(name: string): void;
  /** The full path of a file in fileDir. */
  filePath(name: string): string;
  /** The server node. */
  readonly thisNode: string;
  /** The transaction (app) code. */
  readonly app: string;
  /** The calling node ('' when unknown). */
  readonly clientNode: string;
  /** The client's address. */
  readonly clientIp: string;
  readonly clientPort: number;
  /** The worker's slot in the pool. */
  readonly workerIndex: number;
  /** The transaction's journal number ('' when none). */
  readonly journal: string;
  /**
   * The global transaction id of a multi-transaction ('' outside one): the same on every
   * participant and on every packet of it. commit/rollback may run on another worker or after a
   * server restart: find what main prepared by this id.
   */
  readonly gtrid: string;
  /** Client timeout T of the app (ms). */
  readonly timeoutMs: number;
  /** Server timeout (ms): the worker's alarm; TERM at 1.5x, KILL at 2x. */
  readonly timeout2Ms: number;
  /**
   * Send the response written so far now; main goes on (post-processing) and anything written
   * afterwards is not sent. At most once per call.
   */
  sendAhead(): void;
  /** Whether the response was sent ahead. */
  readonly sentAhead: boolean;
  /** A key/value of this node from the config space (undefined when not set). */
  kv(key: string): string | undefined;
  /** A config value of this app from the config space: app, desc, bin, timeout, timeout2, server_node. */
  config(key: string): string | undefined;
  /** The app's own log. */
  readonly log: AppLog;
}

/** What an entry point returns: 0 / undefined = ok, another integer = the app's error code. */
export type AppResult = number | void;
export type AppEntry = (ctx: AppContext) => AppResult | Promise<AppResult>;

/** The exports of an app module (the well-known symbols of ibp_app.h, in TypeScript). */
export interface AppModule {
  /** somain: one transaction (required). May be async (the host awaits it). */
  main: AppEntry;
  /** soinit: after load; non-zero refuses the load. */
  init?: AppEntry;
  /** soclean: before unload; result ignored. */
  clean?: AppEntry;
  /** socommit: two-phase commit of what main prepared. */
  commit?: AppEntry;
  /** sorollback: undo what main prepared. */
  rollback?: AppEntry;
  /** ibp_app_abi_version: the ABI the app was written for (APP_ABI_VERSION). */
  abiVersion?: number;
}

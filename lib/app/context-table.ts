/**
 * THE table of the app API: every member of the app context and every entry point, with its
 * TypeScript name (lib/app/api.ts `AppContext` / `AppModule`) and its C name (lib/native/ibp_app.h
 * `struct ibp_app_ctx` / the well-known symbols). test/lib/app-api.test.ts parses both files and
 * checks them against this table both ways, so a field added on one side only fails the build's
 * tests; docs/apps.md prints it.
 *
 * kind: `field` (data), `function` (a callable: a function pointer member in C), `entry` (an
 * exported entry point), `host` (a C-only member: layout and host bookkeeping, no TS twin),
 * `ts` (a TS-only convenience computed from C fields: no C twin needed).
 */
export interface ApiRow {
  readonly kind: 'field' | 'function' | 'entry' | 'host' | 'ts';
  /** The AppContext / AppModule member ('' for a C-only row). */
  readonly ts: string;
  /** The ibp_app_ctx member or exported symbol ('' for a TS-only row). */
  readonly c: string;
  readonly doc: string;
}

export const APP_CONTEXT_TABLE: readonly ApiRow[] = [
  { kind: 'field', ts: 'abiVersion', c: 'abi_version', doc: 'IBP_APP_ABI_VERSION of the host' },
  { kind: 'host', ts: '', c: 'ctx_size', doc: 'sizeof(ibp_app_ctx) as the host was built' },
  { kind: 'field', ts: 'phase', c: 'phase', doc: 'why the host is calling (IBP_APP_PHASE_*)' },
  { kind: 'host', ts: '', c: 'reserved0', doc: 'padding' },
  { kind: 'field', ts: 'request', c: 'req', doc: 'the request bytes' },
  { kind: 'host', ts: '', c: 'req_len', doc: 'request length (a Buffer knows its length)' },
  { kind: 'host', ts: '', c: 'rsp', doc: 'the response buffer (TS: write)' },
  { kind: 'field', ts: 'responseLength', c: 'rsp_len', doc: 'bytes of the response so far' },
  { kind: 'host', ts: '', c: 'rsp_cap', doc: 'room at rsp (TS buffers grow by themselves)' },
  { kind: 'host', ts: '', c: 'rsp_reserve', doc: 'make room in rsp (TS: write grows it)' },
  { kind: 'function', ts: 'write', c: 'rsp_append', doc: 'append bytes to the response' },
  { kind: 'field', ts: 'fileDir', c: 'file_dir', doc: 'the folder of attached files' },
  { kind: 'host', ts: '', c: 'req_file_count', doc: 'number of request files (TS: requestFiles.length)' },
  { kind: 'host', ts: '', c: 'rsp_file_count', doc: 'number of response files (TS: responseFiles.length)' },
  { kind: 'field', ts: 'requestFiles', c: 'req_files', doc: 'plain names of the request files' },
  { kind: 'ts', ts: 'responseFiles', c: '', doc: 'response files added so far' },
  { kind: 'function', ts: 'addFile', c: 'rsp_file_add', doc: 'send fileDir/name back with the response' },
  { kind: 'ts', ts: 'filePath', c: '', doc: 'full path of a file in fileDir (C: ibp_file_path())' },
  { kind: 'field', ts: 'thisNode', c: 'this_node', doc: 'the server node' },
  { kind: 'field', ts: 'app', c: 'app', doc: 'the transaction (app) code' },
  { kind: 'field', ts: 'clientNode', c: 'client_node', doc: 'the calling node' },
  { kind: 'field', ts: 'clientIp', c: 'client_ip', doc: "the client's address" },
  { kind: 'field', ts: 'clientPort', c: 'client_port', doc: "the client's port" },
  { kind: 'field', ts: 'workerIndex', c: 'worker_index', doc: "the worker's slot" },
  { kind: 'field', ts: 'journal', c: 'journal', doc: "the transaction's journal number" },
  { kind: 'field', ts: 'timeoutMs', c: 'timeout_ms', doc: 'client timeout T (ms)' },
  { kind: 'field', ts: 'timeout2Ms', c: 'timeout2_ms', doc: 'server timeout (ms): the alarm' },
  { kind: 'host', ts: '', c: 'host', doc: 'host private' },
  { kind: 'function', ts: 'sendAhead', c: 'rsp_send_ahead', doc: 'send the response so far now; main goes on' },
  { kind: 'field', ts: 'sentAhead', c: 'sent_ahead', doc: 'the response was sent ahead' },
  { kind: 'host', ts: '', c: 'reserved1', doc: 'padding' },
  { kind: 'function', ts: 'kv', c: 'kv_get', doc: "a key/value of this node from the config space" },
  { kind: 'function', ts: 'config', c: 'config_get', doc: "a config value of this app from the config space" },
  { kind: 'function', ts: 'log', c: 'log', doc: "the app's own log (TS: log.debug/info/warn/error; C: ctx->log(ctx, IBP_APP_LOG_*, msg))" },
  { kind: 'field', ts: 'gtrid', c: 'gtrid', doc: "the global transaction id of a multi-transaction ('' outside one)" },
  { kind: 'host', ts: '', c: 'reserved', doc: 'room to grow' },
  { kind: 'entry', ts: 'main', c: 'somain', doc: 'one transaction (required)' },
  { kind: 'entry', ts: 'init', c: 'soinit', doc: 'after load; non-zero refuses the load' },
  { kind: 'entry', ts: 'clean', c: 'soclean', doc: 'before unload; result ignored' },
  { kind: 'entry', ts: 'commit', c: 'socommit', doc: 'two-phase commit: commit what main prepared' },
  { kind: 'entry', ts: 'rollback', c: 'sorollback', doc: 'two-phase commit: undo what main prepared' },
  { kind: 'entry', ts: 'abiVersion', c: 'ibp_app_abi_version', doc: 'the ABI the app was built for' },
];

/** The values of config(key) / config_get: the app's record of the config space. */
export const APP_CONFIG_KEYS = ['app', 'desc', 'bin', 'timeout', 'timeout2', 'server_node'] as const;
export type AppConfigKey = (typeof APP_CONFIG_KEYS)[number];

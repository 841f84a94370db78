/**
 * The one error table of IBP-TS.
 *
 * Every failure that crosses a module boundary is an {@link IbpError} carrying a stable `code`
 * from {@link ERRORS}. Codes never change meaning once released; docs/ERRORS.md lists them all and
 * test/lib/errors.test.ts keeps the table and the document in step.
 *
 * A message says what went wrong AND what to do about it.
 */

import { EXIT } from './exit-codes.js';

export interface ErrorSpec {
  /** Default message; `{name}` placeholders are filled from the `params` given at throw time. */
  readonly message: string;
  /** HTTP status when the error answers a REST call. */
  readonly http?: number;
  /** Process exit code when the error ends a command-line tool. */
  readonly exit?: number;
}

export const ERRORS = {
  /** Command line */
  IBP_ERR_CLI_USAGE: { message: '{detail}', exit: EXIT.USAGE },
  IBP_ERR_CLI_BAD_ARG: { message: 'bad value for {arg}: {detail}', exit: EXIT.USAGE },

  /** Config files */
  IBP_ERR_CFG_NOT_FOUND: { message: 'config file {file} not found: run `{tool} -a init` first or pass -f', exit: EXIT.INIT },
  IBP_ERR_CFG_PARSE: { message: 'config file {file} is not valid JSON: {detail}', exit: EXIT.INIT },
  IBP_ERR_CFG_INVALID: { message: 'config file {file}: key {key} {detail}', exit: EXIT.INIT },
  IBP_ERR_CFG_EXISTS: { message: '{file} exist !', exit: EXIT.OK },
  IBP_ERR_CFG_BIN_IMAGE: { message: 'config image {file} is unreadable ({detail}); delete it or run `ibms -a build_config`', exit: EXIT.INIT },

  /** Home, files, names */
  IBP_ERR_HOME_LAYOUT: { message: 'home folder {home}: {detail}', exit: EXIT.INIT },
  IBP_ERR_FILE_NAME: { message: 'file name {name} refused: {detail}', http: 400, exit: EXIT.USAGE },

  /** Codec / REST bodies */
  IBP_ERR_CODEC_JSON: { message: 'malformed JSON body: {detail}', http: 400 },
  IBP_ERR_CODEC_LZ4: { message: 'malformed lz4 body: {detail}', http: 400 },
  IBP_ERR_CODEC_TOO_LARGE: { message: 'body of {size} bytes is over the limit of {limit}', http: 413 },
  IBP_ERR_CODEC_EXPANDS: { message: 'lz4 body expands past its declared size of {declared} bytes: refused without decoding (send the true size)', http: 413 },
  IBP_ERR_CODEC_BUSY: { message: 'lz4 bodies being decoded already hold {held} of {limit} bytes: retry shortly', http: 503 },

  /** Registry (ibms) */
  IBP_ERR_REG_AUTH: { message: 'missing or wrong credential: pass the admin credential (keys/admin.credential) or the node credential', http: 401, exit: EXIT.REG_AUTH },
  IBP_ERR_REG_RATE_LIMITED: { message: 'too many requests with a missing or wrong credential from {client}: retry in {seconds} s with the right credential', http: 429, exit: EXIT.REG_AUTH },
  IBP_ERR_REG_FORBIDDEN: { message: '{who} is not entitled to {what}', http: 403, exit: EXIT.REG_AUTH },
  IBP_ERR_REG_NOT_FOUND: { message: '{kind} {name} not found', http: 404, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_EXISTS: { message: '{kind} {name} already exists: use set_{kind} to change it', http: 409, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_INVALID: { message: '{detail}', http: 400, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_UNREACHABLE: { message: 'ibms at {url} is not answering ({detail}): is it started? (`ibms -s status`)', exit: EXIT.REG_UNAVAILABLE },
  IBP_ERR_REG_ANSWER: { message: 'ibms answered {status}: {detail}', exit: EXIT.REG_UNAVAILABLE },
  IBP_ERR_REG_IN_USE: { message: '{kind} {name} is still used by {users}: remove it there first', http: 409, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_HOST_TAKEN: { message: 'host {host} is already a host of node {node}: remove it there first (remove_node_host)', http: 409, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_NO_PACKAGE: { message: 'package {bin} of app {app} is not in {dir}: copy the .so there first', http: 404, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_SAVE: { message: 'writing {file} failed ({detail}); the previous file is kept', http: 500, exit: EXIT.REG_UNAVAILABLE },
  IBP_ERR_REG_STOPPING: { message: 'ibms is stopping: retry once it is started again', http: 503, exit: EXIT.REG_UNAVAILABLE },
  IBP_ERR_REG_NOT_DISTRIBUTED: { message: 'node {node} has no distributed config yet: run `ibms -a distribute_config` (or `-a download_config --node {node}`)', http: 404, exit: EXIT.REG_REFUSED },
  IBP_ERR_REG_SCALE_STEP: { message: 'scale step {step} on host {host} failed: {detail}; fix it and run the same command again (it resumes)', exit: EXIT.REG_UNAVAILABLE },
  IBP_ERR_REG_INTERNAL: { message: 'ibms failed on {what}: {detail} (see the ibms worker log)', http: 500, exit: EXIT.REG_UNAVAILABLE },

  /** Agent (ibma) */
  IBP_ERR_AGENT_PACKAGE: { message: 'package {bin} rejected: {detail}; the old file stays (check so/ of the registry, then `ibms -a update_app`)' },

  /** Package signing and the so/ folder */
  IBP_ERR_PKG_KEY: { message: 'package-signing key {file}: {detail}', exit: EXIT.INIT },
  IBP_ERR_SO_FOLDER: { message: 'so/ folder {dir} refused: {detail}', exit: EXIT.INIT },
  IBP_ERR_SO_SYMLINK: { message: 'package file {file} refused ({detail}): remove it; so/ holds regular files only' },
  IBP_ERR_NODE_KEY_FILE: { message: 'node key file {file} refused: {detail}', exit: EXIT.INIT },
  IBP_ERR_AGENT_NODE_KEYS: { message: 'node keys of {node} not taken: {detail}; the agent retries (check `ibms -s node_keys --node {node}`)' },

  /** Daemons */
  IBP_ERR_DAEMON_RUNNING: { message: '{tool} is already running with pid {pid} (pid file {pidfile})', exit: EXIT.DAEMON },
  IBP_ERR_DAEMON_NOT_RUNNING: { message: '{tool} is not running (pid file {pidfile})', exit: EXIT.DAEMON },
  IBP_ERR_DAEMON_START: { message: '{tool} did not start: {detail}; see {log}', exit: EXIT.DAEMON },
  IBP_ERR_DAEMON_STOP: { message: '{tool} (pid {pid}) did not stop within {ms} ms', exit: EXIT.DAEMON },

  /** Sockets (ibas's listen socket and connections, through libc) */
  IBP_ERR_NET_SYSCALL: { message: '{call} failed: {detail}', exit: EXIT.DAEMON },

  /** Shared memory */
  IBP_ERR_SHM_SYSCALL: { message: '{call} failed: {detail}', exit: EXIT.SHM },
  IBP_ERR_SHM_NO_SPACE: { message: 'no config space at index key {key}: is ibma started for this home? (`ibma -s status`)', exit: EXIT.SHM },
  IBP_ERR_SHM_LAYOUT: { message: 'segment {key} has layout {found}, this build reads {expected}: restart ibma with this build', exit: EXIT.SHM },
  IBP_ERR_SHM_CAPACITY: { message: '{what} does not fit in the segment: {detail}', exit: EXIT.SHM },
  IBP_ERR_SHM_INPUT: { message: 'cannot build a config segment from this config: {detail}; fix it in ibms and distribute again', exit: EXIT.SHM },
  IBP_ERR_SHM_ARG: { message: 'bad {arg}: {detail}', exit: EXIT.SHM },

  /** Wire protocol */
  IBP_ERR_PROTO_FRAME: { message: 'malformed frame: {detail}' },
  IBP_ERR_PROTO_TOO_LARGE: { message: 'frame of {size} bytes is over the limit of {limit}' },
  IBP_ERR_PROTO_VERSION: { message: 'protocol version {found} not supported (this side speaks {expected})' },
  IBP_ERR_PROTO_TRUNCATED: { message: 'connection ended inside a frame ({detail}): the peer closed or crashed mid-send' },
  IBP_ERR_PROTO_SEQUENCE: { message: 'unexpected {type} packet {detail}: follow pre-request, push files, request' },
  IBP_ERR_PROTO_REFUSED: { message: 'server refused the transaction: {detail}' },
  IBP_ERR_PROTO_IDLE: { message: 'connection idle for {ms} ms: closed by the server (send a keep-alive to hold it)' },
  IBP_ERR_PROTO_DEADLINE: { message: 'connection closed by the server: phase {phase} not done within {ms} ms (ibas.conf comm.*_timeout; send each request whole and read answers promptly)' },
  IBP_ERR_PROTO_NOT_GRANTED: { message: 'lz4-compressed {type} packet but compression was not granted in this transaction\'s pre-answer: compress only after PRE_ANSWER grants COMPRESS' },

  /** Signed and encrypted transactions (lib/protocol/tx-crypto.ts, tx-security.ts) */
  IBP_ERR_TX_UNPROTECTED: { message: 'this server requires {what} transactions (ibas.conf security.{flag} = required) and this one is not: sign (and encrypt) it from a node with a published key; nothing ran' },
  IBP_ERR_TX_UNKNOWN_NODE: { message: 'node {node} has no published transaction key here: give it a node key (ibms -a rotate_node_key --node {node}) and let the agents distribute it; nothing ran' },
  IBP_ERR_TX_FOREIGN_KEY: { message: 'key {kcv} is not a key of {node} ({detail}): a node signs with its own key only; nothing ran' },
  IBP_ERR_TX_KEY_EXPIRED: { message: 'key {kcv} of {node} is past its disable time: the sender must switch to its new key (ibma publishes it; check the node\'s clock); nothing ran' },
  IBP_ERR_TX_TAMPERED: { message: '{type} packet failed its authentication ({detail}): altered in transit or forged; the connection is closed' },
  IBP_ERR_TX_REPLAY: { message: '{type} packet replayed: {detail}; the connection is closed' },
  IBP_ERR_TX_REPLAY_CACHE_FULL: { message: 'the replay cache is full ({capacity} entries of hellos seen within {window}): the signed transaction was refused rather than forgotten; raise ibas.conf security.replay_cache_size (or shorten security.replay_window) and restart ibas; the connection is closed' },
  IBP_ERR_TX_OUT_OF_ORDER: { message: '{type} packet out of order: sequence {got} where {expected} was due; the connection is closed' },
  IBP_ERR_TX_NO_KEY: { message: 'no usable transaction key: {detail}' },
  IBP_ERR_TX_NOT_GRANTED: { message: '{what} asked but not granted by {host}: {detail}' },

  /** Apps */
  IBP_ERR_APP_UNKNOWN: { message: 'app {app} is not configured on this node: check the transaction code, or configure it in ibms (`ibms -s apps`; `ibms -a add_app`, then `ibms -a distribute_config`)' },
  IBP_ERR_APP_INVALID: { message: 'app {app} is marked invalid' },
  IBP_ERR_APP_LOAD: { message: 'app {app}: cannot load {file}: {detail}' },
  IBP_ERR_APP_FAILED: { message: 'app {app} returned {rc}' },
  IBP_ERR_APP_TIMEOUT: { message: 'app {app} timed out after {ms} ms ({tier})' },
  IBP_ERR_APP_CRASH: { message: 'app {app} crashed the worker ({signal})' },
  IBP_ERR_APP_FILE: { message: 'app {app}: attached file {name} refused: {detail}' },
  IBP_ERR_APP_NO_2PC: { message: 'app {app} does not export {symbol}: it cannot take part in two-phase commit' },
  IBP_ERR_APP_SUSPENDED: { message: 'app {app} is suspended on this server: it killed {crashes} workers within {window} s (monitor.app_max_crashes); nothing ran, safe to retry on another host; it resumes when its package changes or on `ibas -a resume_app --app {app}`', http: 503 },
  IBP_ERR_APP_TAMPERED: { message: 'app {app}: {file} has sha256 {got}, the signed sha256 of the config space is {expected}: refused (the previous good version, if any, keeps serving); reinstall it through ibma' },
  IBP_ERR_APP_THREW: { message: 'app {app} threw in {entry}: {detail}; see its log for the stack' },
  IBP_ERR_APP_UNLOADED: { message: 'app {app} ({file}) was unloaded: get it from the app cache again' },
  IBP_ERR_NATIVE_MISSING: { message: 'native library {file} is missing or stale ({detail}): run `npm run build:apps`', exit: EXIT.INIT },
  IBP_ERR_NATIVE_CALL: { message: '{call} failed: {detail}' },

  /** Worker pool */
  IBP_ERR_POOL_CRASH_LOOP: { message: 'workers die at start ({count} in {ms} ms): stopped respawning; fix the app or config and restart', exit: EXIT.CRASH_LOOP },
  IBP_ERR_POOL_STOPPING: { message: 'server {node} is stopping: retry on another host' },
  IBP_ERR_POOL_INTERNAL: { message: 'server internal error: {detail}; see the worker log' },
  IBP_ERR_POOL_NO_SPACE: { message: 'server has no config space ({detail}): is ibma started on the server host?' },

  /** Client (ibac) */
  IBP_ERR_CLIENT_NO_HOST: { message: 'no usable host for node {node}: every host is invalid or suspended', exit: EXIT.CLIENT_FAILED },
  IBP_ERR_CLIENT_CONNECT: { message: 'cannot connect to {host}: {detail}', exit: EXIT.CLIENT_FAILED },
  IBP_ERR_CLIENT_SAFE: { message: 'transaction failed before the request left ({detail}): safe to retry', exit: EXIT.CLIENT_FAILED },
  IBP_ERR_CLIENT_SUSPICIOUS: { message: 'transaction SUSPICIOUS: the request may have reached {host} but no complete response came back ({detail}); verify, reverse or escalate', exit: EXIT.CLIENT_SUSPICIOUS },
  IBP_ERR_CLIENT_NOT_SUPPORTED: { message: '{feature} is not supported yet' },
  IBP_ERR_CLIENT_NODE_UNKNOWN: { message: 'node {node} is not in the config space of node {thisNode}: put both in one project (ibms -a set_project) and distribute', exit: EXIT.CLIENT_FAILED },
  IBP_ERR_CLIENT_NODE_INVALID: { message: 'node {node} is marked invalid in the registry: ibms -a set_node --node {node} --invalid 0 makes it usable', exit: EXIT.CLIENT_FAILED },
  IBP_ERR_CLIENT_USAGE: { message: '{detail}', exit: EXIT.USAGE },

  /** Remote command agent (ibcmd) */
  IBP_ERR_CMD_DENIED: { message: 'command refused: {detail}', http: 403, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_SYNTAX: { message: 'command line refused: {detail}', http: 400, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_RATE_LIMITED: { message: 'too many requests with a missing or wrong ibcmd credential from {client}: retry in {seconds} s with the right credential', http: 429, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_PATH_UNSAFE: { message: 'the command PATH is unsafe: {detail}', exit: EXIT.INIT },
  IBP_ERR_CMD_AUTH: { message: 'missing or wrong ibcmd credential: present a copy of keys/ibcmd.credential of the agent (--credential-file)', http: 401, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_CREDENTIAL: { message: 'credential file {file}: {detail}', exit: EXIT.INIT },
  IBP_ERR_CMD_EXEC: { message: 'cannot run {cmd}: {detail}', http: 422, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_BUSY: { message: 'the agent already runs {count} commands: retry later', http: 503, exit: EXIT.CMD_UNAVAILABLE },
  IBP_ERR_CMD_FILE_NOT_FOUND: { message: 'file {name} is not in the sandbox', http: 404, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_FILE_REFUSED: { message: 'file {name} refused: {detail}', http: 403, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_ROUTE: { message: 'no such ibcmd endpoint {method} {url}', http: 404, exit: EXIT.CMD_REFUSED },
  IBP_ERR_CMD_UNREACHABLE: { message: 'ibcmd at {url} is not answering ({detail}): is it started? (`ibcmd -s status`)', exit: EXIT.CMD_UNAVAILABLE },
  IBP_ERR_CMD_ANSWER: { message: 'ibcmd answered {status}: {detail}', exit: EXIT.CMD_UNAVAILABLE },
  IBP_ERR_CMD_INTERNAL: { message: 'the agent failed: {detail}; see its log', http: 500, exit: EXIT.CMD_UNAVAILABLE },

  /** App framework: declared messages (ibmsgv) */
  IBP_ERR_MSG_DECL: { message: '{file}:{line}: {detail}; fix the .dsc declaration', exit: EXIT.USAGE },
  IBP_ERR_MSG_SYNTAX: { message: 'message {message} is not valid {format}: {detail}' },
  IBP_ERR_MSG_FIELD: { message: 'message {message} field {field}: expected {expected}, got {got}' },
  IBP_ERR_MSG_UNKNOWN_FIELD: { message: 'message {message} has no field {field}: remove it or declare it in the .dsc' },

  /** Two-phase commit you can recover (ibac coordinator log, ibas participant log; docs/ibac.md, docs/ibas.md) */
  IBP_ERR_TX_HAZARD: { message: 'global transaction {gtrid}: the outcome of {decision} on participant {node} ({host}) is unknown ({detail}); the decision is logged and recovery drives it to {decision}: run `ibpsend --recover` or see `ibas -s in_doubt` on {node}' },
  IBP_ERR_TX_HEURISTIC: { message: 'global transaction {gtrid} was already {state} on this server ({by}): {op} was not carried out; reconcile this participant by hand' },
  IBP_ERR_TX_UNKNOWN: { message: 'no prepared transaction {gtrid} on this server: {op} cannot be carried out; see `ibas -s in_doubt` and the coordinator log' },
  IBP_ERR_TX_BUSY: { message: 'global transaction {gtrid} is being decided by process {pid} of this server: retry in a moment' },
  IBP_ERR_TX_ABORTED: { message: 'global transaction {gtrid} was already rolled back on this server (presumed abort: its coordinator gave up on it): the prepare was undone, the vote is no' },
  IBP_ERR_TX_LOG: { message: 'two-phase commit log {file}: {detail}; check the disk and the permissions of the home folder' },
  IBP_ERR_TX_GTRID: { message: 'global transaction id {gtrid} refused: {detail}' },

  /** App framework: function trees (ibtm) */
  IBP_ERR_TM_TREE: { message: 'function array {tree}: {detail}' },
  IBP_ERR_TM_BLOCK: { message: 'structure block {name}: {detail}' },
  IBP_ERR_TM_FUNC: { message: 'function {func} ({desc}) threw: {detail}' },

  /** App framework: phased templates (ibts) */
  IBP_ERR_TS_DB: { message: 'database {op} failed in phase {phase}: {detail}' },
  IBP_ERR_TS_TEMPLATE: { message: 'phased template {template}: {detail}' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Record<string, string | number | undefined>;

/** A SysV key as every IBP-TS output prints it: hex, `0x…` (lib/shm/keys.ts `formatKey`). */
function hexKey(k: number): string {
  return `0x${(k >>> 0).toString(16)}`;
}

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) return `{${name}}`;
    // a numeric `key` is a SysV key (a config key is a string): one format everywhere
    return name === 'key' && typeof value === 'number' ? hexKey(value) : String(value);
  });
}

export class IbpError extends Error {
  readonly code: ErrorCode;
  readonly params: ErrorParams;
  readonly http: number;
  readonly exitCode: number;

  constructor(code: ErrorCode, params: ErrorParams = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(render(spec.message, params), options);
    this.name = 'IbpError';
    this.code = code;
    this.params = params;
    this.http = spec.http ?? 500;
    this.exitCode = spec.exit ?? 1;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isIbpError(e: unknown, code?: ErrorCode): e is IbpError {
  return e instanceof IbpError && (code === undefined || e.code === code);
}

/** The message of any thrown value, for logs. */
export function errorText(e: unknown): string {
  if (e instanceof IbpError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

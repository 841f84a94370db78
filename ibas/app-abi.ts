/**
 * The app ABI on the TypeScript side: the ONE table of well-known app symbols, the koffi mirrors
 * of lib/native/ibp_app.h and of the host helper's call structs (lib/native/ibp_host.c), and the
 * binding of build/native/libibp_host.so.
 *
 * An app is called through the host helper, never through a koffi callback: one transaction is
 * one FFI crossing (ibp_host_call), and the response grows in C (see ibp_host.c).
 */
import type { TypeObject } from 'koffi';
import { koffi } from '../lib/native/libc.js';
import { nativeLibrary } from '../lib/native/built-files.js';
import { IbpError } from '../lib/errors.js';

/** IBP_APP_ABI_VERSION of lib/native/ibp_app.h. */
export const APP_ABI_VERSION = 1;
/** IBP_APP_MAX_FILES: most attached files each way in one call. */
export const APP_MAX_FILES = 64;
/** IBP_APP_FILE_NAME_MAX: longest attached file name (bytes, without NUL). */
export const APP_FILE_NAME_MAX = 255;

/** IBP_APP_PHASE_*: why the host calls an entry point (ctx->phase). @enum */
export const PHASE = { INIT: 1, MAIN: 2, COMMIT: 3, ROLLBACK: 4, CLEAN: 5 } as const;
export type Phase = (typeof PHASE)[keyof typeof PHASE];

/** The prototype shared by every entry point: `int fn(ibp_app_ctx *ctx)`. */
export const APP_CTX = koffi.opaque('ibp_app_ctx');
export const APP_ENTRY = koffi.proto('int ibp_app_entry_fn(ibp_app_ctx *ctx)');

export type SymbolName = 'somain' | 'soinit' | 'soclean' | 'socommit' | 'sorollback' | 'ibp_app_abi_version';

export interface AppSymbol {
  readonly name: SymbolName;
  /** A .so without it is refused (IBP_ERR_APP_LOAD). */
  readonly required: boolean;
  /** `entry`: a function of prototype {@link APP_ENTRY}, called with this phase; `data`: a variable. */
  readonly kind: 'entry' | 'data';
  /** koffi type: the entry prototype, or the variable's type. */
  readonly type: TypeObject | string;
  readonly phase?: Phase;
  readonly doc: string;
}

/**
 * The well-known symbols of an app .so, resolved from this table only (STYLE §7: one
 * `{name, required, signature}` table instead of hand-unrolled dlsym calls).
 */
export const APP_SYMBOLS: readonly AppSymbol[] = [
  { name: 'somain', required: true, kind: 'entry', type: APP_ENTRY, phase: PHASE.MAIN, doc: 'one transaction' },
  { name: 'soinit', required: false, kind: 'entry', type: APP_ENTRY, phase: PHASE.INIT, doc: 'after load; non-zero refuses the load' },
  { name: 'soclean', required: false, kind: 'entry', type: APP_ENTRY, phase: PHASE.CLEAN, doc: 'before unload; result ignored' },
  { name: 'socommit', required: false, kind: 'entry', type: APP_ENTRY, phase: PHASE.COMMIT, doc: 'two-phase commit: commit what somain prepared' },
  { name: 'sorollback', required: false, kind: 'entry', type: APP_ENTRY, phase: PHASE.ROLLBACK, doc: 'two-phase commit: undo what somain prepared' },
  { name: 'ibp_app_abi_version', required: false, kind: 'data', type: 'uint32_t', doc: 'IBP_APP_DECLARE(): the ABI the app was built for' },
];

/**
 * Per-call input of ibp_host_call: a byte buffer, no struct marshalling (IN_* in ibp_host.c).
 * HOST_IN.FIELDS uint32 values, then NUL-terminated strings that the *_OFF fields point at.
 */
export const HOST_IN = {
  PHASE: 0, CLIENT_PORT: 1, WORKER_INDEX: 2, TIMEOUT_MS: 3, TIMEOUT2_MS: 4, REQ_FILE_COUNT: 5,
  FILE_DIR_OFF: 6, THIS_NODE_OFF: 7, APP_OFF: 8, CLIENT_NODE_OFF: 9, CLIENT_IP_OFF: 10, JOURNAL_OFF: 11,
  GTRID_OFF: 12, FIELDS: 13,
} as const;

/** Per-call output (ibp_host_out in ibp_host.c), read through typed-array views. */
export const HOST_OUT = {
  SIZE: 64,
  /** int32 indexes */
  RC: 0, IN_PLACE: 1, RSP_FILE_COUNT: 2, BAD_LEN: 3, LOG_LEN: 12, SENT_AHEAD: 13, LOG_DROPPED: 14,
  /** byte offsets */
  RSP_LEN_F64: 16, RSP_PTR: 24, RSP_FILES_PTR: 32, LOG_PTR: 40,
} as const;

/** ibp_host_set_table's `which`: the kv_get and config_get tables. @enum */
export const HOST_TABLE = { KV: 0, CONFIG: 1 } as const;

/** A pointer as koffi 3 gives it (BigInt address). */
export type Pointer = bigint;

/** The functions of build/native/libibp_host.so. */
export interface HostLibrary {
  readonly file: string;
  newCtx(): Pointer | null;
  freeCtx(ctx: Pointer): void;
  release(ctx: Pointer): void;
  setTable(ctx: Pointer, which: number, table: Buffer | null, len: number): number;
  call(fn: Pointer, ctx: Pointer, req: Buffer | null, reqLen: number, buf: Buffer, bufCap: number, input: Buffer, inputLen: number, reqFiles: string[] | null, out: Uint8Array): number;
}

let host: HostLibrary | undefined;

/**
 * The host helper, loaded once per process. Checks that the built helper matches this file
 * (ABI version and call layouts): a stale build gives IBP_ERR_NATIVE_MISSING, not a crash.
 */
export function hostLibrary(): HostLibrary {
  if (host) return host;
  const file = nativeLibrary('ibp_host');
  const lib = koffi.load(file);
  const u32 = (name: string) => {
    try {
      return (lib.func(`uint32_t ${name}(void)`) as () => number)();
    } catch {
      return -1; // an older helper without this function
    }
  };
  const checks: [string, number, number][] = [
    ['ABI version', u32('ibp_host_abi_version'), APP_ABI_VERSION],
    ['input fields', u32('ibp_host_in_fields'), HOST_IN.FIELDS],
    ['sizeof(ibp_host_out)', u32('ibp_host_out_size'), HOST_OUT.SIZE],
  ];
  for (const [what, built, expected] of checks) {
    if (built !== expected) {
      lib.unload();
      throw new IbpError('IBP_ERR_NATIVE_MISSING', { file, detail: `${what} is ${built}, this build expects ${expected}` });
    }
  }
  host = {
    file,
    newCtx: lib.func('ibp_app_ctx *ibp_host_new(void)') as HostLibrary['newCtx'],
    freeCtx: lib.func('void ibp_host_free(ibp_app_ctx *ctx)') as HostLibrary['freeCtx'],
    release: lib.func('void ibp_host_release(ibp_app_ctx *ctx)') as HostLibrary['release'],
    setTable: lib.func('int32_t ibp_host_set_table(ibp_app_ctx *ctx, int32_t which, const uint8_t *table, size_t len)') as HostLibrary['setTable'],
    call: lib.func(
      'int32_t ibp_host_call(ibp_app_entry_fn *fn, ibp_app_ctx *ctx, const uint8_t *req, size_t req_len, uint8_t *buf, size_t buf_cap, ' +
        'const uint8_t *input, size_t input_len, const char **req_files, uint8_t *out)',
    ) as HostLibrary['call'],
  };
  return host;
}

/** What one crossing gives the app (strings may be empty). */
export interface HostCallInput {
  phase: Phase;
  clientPort: number;
  workerIndex: number;
  timeoutMs: number;
  timeout2Ms: number;
  fileDir: string;
  thisNode: string;
  app: string;
  clientNode: string;
  clientIp: string;
  journal: string;
  /** The global transaction id of a two-phase transaction ('' otherwise). */
  gtrid: string;
}

export interface HostCallOutput {
  rc: number;
  response: Buffer;
  /** Response file names as the app registered them (already checked as plain names in C). */
  files: string[];
  /** The app set rsp_len beyond rsp_cap; the response was cut to rsp_cap. */
  badLength: boolean;
  /** The app called rsp_send_ahead: the response is what it froze then. */
  sentAhead: boolean;
  /** Lines the app logged through ctx->log, in order. */
  log: { level: number; msg: string }[];
  /** Lines beyond IBP_APP_LOG_MAX. */
  logDropped: number;
}

const u32 = (n: number): number => (!Number.isFinite(n) ? 0 : Math.min(0xffffffff, Math.max(0, Math.round(n))));
const STRING_FIELDS = [
  ['fileDir', HOST_IN.FILE_DIR_OFF], ['thisNode', HOST_IN.THIS_NODE_OFF], ['app', HOST_IN.APP_OFF],
  ['clientNode', HOST_IN.CLIENT_NODE_OFF], ['clientIp', HOST_IN.CLIENT_IP_OFF], ['journal', HOST_IN.JOURNAL_OFF],
  ['gtrid', HOST_IN.GTRID_OFF],
] as const;

/**
 * One worker's side of the host helper: its ibp_app_ctx, the response buffer an app writes into
 * in place, and the input/output buffers of ibp_host_call. Not re-entrant (one call at a time,
 * which is how a worker calls apps).
 */
export class HostCall {
  readonly #host: HostLibrary;
  #ctx: Pointer;
  readonly #rsp: Buffer;
  #in: Buffer;
  #inU32: Uint32Array;
  readonly #out = new Uint8Array(HOST_OUT.SIZE);
  readonly #outI32 = new Int32Array(this.#out.buffer, 0, HOST_OUT.SIZE / 4);
  readonly #outLen = new Float64Array(this.#out.buffer, HOST_OUT.RSP_LEN_F64, 1);
  readonly #outPtr = new BigUint64Array(this.#out.buffer, HOST_OUT.RSP_PTR, 3);
  readonly #tables: string[] = ['', ''];

  constructor(responseBufferSize = 64 * 1024) {
    this.#host = hostLibrary();
    const ctx = this.#host.newCtx();
    if (ctx === null) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_host_new', detail: 'out of memory' });
    this.#ctx = ctx;
    this.#rsp = Buffer.allocUnsafeSlow(Math.max(256, responseBufferSize));
    this.#in = Buffer.allocUnsafeSlow(4096);
    this.#inU32 = new Uint32Array(this.#in.buffer, this.#in.byteOffset, HOST_IN.FIELDS);
  }

  get open(): boolean { return this.#ctx !== 0n; }

  /** Call `fn` (an entry point of a loaded app) once. */
  call(fn: Pointer, input: HostCallInput, request: Buffer | null, files: readonly string[]): HostCallOutput {
    if (this.#ctx === 0n) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_host_call', detail: 'the host context was freed' });
    const inLen = this.#encode(input, files.length);
    const req = request && request.length ? request : null;
    const host = this.#host;
    const rc = host.call(fn, this.#ctx, req, req ? req.length : 0, this.#rsp, this.#rsp.length, this.#in, inLen, files.length ? [...files] : null, this.#out);
    const o = this.#outI32;
    const len = this.#outLen[0]!;
    let response: Buffer;
    if (len === 0) {
      response = Buffer.alloc(0);
    } else if (o[HOST_OUT.IN_PLACE]) {
      response = Buffer.allocUnsafe(len);
      this.#rsp.copy(response, 0, 0, len);
    } else {
      response = Buffer.from(Buffer.from(koffi.view(this.#outPtr[0]!, len))); // copy out of C memory
      host.release(this.#ctx);
    }
    const names: string[] = [];
    const count = o[HOST_OUT.RSP_FILE_COUNT]!;
    for (let i = 0; i < count; i++) names.push(koffi.decode.string(this.#outPtr[1]! + BigInt(i * (APP_FILE_NAME_MAX + 1))));
    const log: { level: number; msg: string }[] = [];
    const logLen = o[HOST_OUT.LOG_LEN]!;
    if (logLen > 0) {
      const bytes = Buffer.from(koffi.view(this.#outPtr[2]!, logLen));
      for (let at = 0; at < logLen;) {
        const end = bytes.indexOf(0, at + 1);
        if (end < 0) break;
        log.push({ level: bytes[at]!, msg: bytes.toString('utf8', at + 1, end) });
        at = end + 1;
      }
    }
    return { rc, response, files: names, badLength: o[HOST_OUT.BAD_LEN] === 1, sentAhead: o[HOST_OUT.SENT_AHEAD] === 1, log, logDropped: o[HOST_OUT.LOG_DROPPED]! };
  }

  /**
   * The kv_get / config_get table of the next calls (HOST_TABLE); copied into C only when it
   * changed since the last set.
   */
  setTable(which: number, entries: Iterable<readonly [string, string]>): void {
    let text = '';
    for (const [k, v] of entries) {
      if (k.includes('\0') || v.includes('\0')) continue;
      text += `${k}\0${v}\0`;
    }
    if (this.#tables[which] === text) return;
    const buf = text ? Buffer.from(text + '\0') : null;
    if (this.#host.setTable(this.#ctx, which, buf, buf ? buf.length : 0) !== 0) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_host_set_table', detail: 'out of memory' });
    this.#tables[which] = text;
  }

  /** Free the context (after the last call). */
  free(): void {
    if (this.#ctx === 0n) return;
    this.#host.freeCtx(this.#ctx);
    this.#ctx = 0n;
  }

  /**
   * The strings of the last call and where each began in #in: a call rewrites only from the
   * first string that changed (the journal, usually: the folder, node, app and client stay).
   */
  readonly #lastStr: string[] = [];
  readonly #lastOff: number[] = [];

  #encode(input: HostCallInput, fileCount: number): number {
    const f = this.#inU32;
    f[HOST_IN.PHASE] = input.phase;
    f[HOST_IN.CLIENT_PORT] = u32(input.clientPort);
    f[HOST_IN.WORKER_INDEX] = u32(input.workerIndex);
    f[HOST_IN.TIMEOUT_MS] = u32(input.timeoutMs);
    f[HOST_IN.TIMEOUT2_MS] = u32(input.timeout2Ms);
    f[HOST_IN.REQ_FILE_COUNT] = fileCount;
    const last = this.#lastStr;
    let from = 0;
    while (from < STRING_FIELDS.length && last[from] === input[STRING_FIELDS[from]![0]]) from++;
    if (from === STRING_FIELDS.length) return this.#lastOff[from]!;
    let off = from === 0 ? HOST_IN.FIELDS * 4 : this.#lastOff[from]!;
    let need = off + 1;
    for (let i = from; i < STRING_FIELDS.length; i++) need += Buffer.byteLength(input[STRING_FIELDS[i]![0]]) + 1;
    if (need > this.#in.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, this.#in.length * 2));
      this.#in.copy(grown, 0, 0, off);
      this.#in = grown;
      this.#inU32 = new Uint32Array(this.#in.buffer, this.#in.byteOffset, HOST_IN.FIELDS);
    }
    const u = this.#inU32;
    const buf = this.#in;
    for (let i = from; i < STRING_FIELDS.length; i++) {
      const [key, field] = STRING_FIELDS[i]!;
      const s = input[key];
      last[i] = s;
      this.#lastOff[i] = off;
      if (s.length === 0) {
        u[field] = 0;
        continue;
      }
      u[field] = off;
      off += buf.write(s, off, 'utf8');
      buf[off++] = 0;
    }
    buf[off++] = 0; // the buffer ends with a NUL (checked by the helper)
    this.#lastOff[STRING_FIELDS.length] = off;
    return off;
  }
}

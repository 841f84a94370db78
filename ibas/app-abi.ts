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

/** Per-call input of ibp_host_call (ibp_host_in in ibp_host.c). */
export const HostIn = koffi.struct('ibp_host_in', {
  phase: 'uint32_t',
  client_port: 'uint32_t',
  worker_index: 'uint32_t',
  timeout_ms: 'uint32_t',
  timeout2_ms: 'uint32_t',
  req_file_count: 'uint32_t',
  file_dir: 'const char *',
  this_node: 'const char *',
  app: 'const char *',
  client_node: 'const char *',
  client_ip: 'const char *',
  journal: 'const char *',
  req_files: 'const char **',
});

export interface HostInValue {
  phase: number;
  client_port: number;
  worker_index: number;
  timeout_ms: number;
  timeout2_ms: number;
  req_file_count: number;
  file_dir: string;
  this_node: string;
  app: string;
  client_node: string;
  client_ip: string;
  journal: string;
  req_files: string[] | null;
}

/** Per-call output of ibp_host_call (ibp_host_out in ibp_host.c). */
export const HostOut = koffi.struct('ibp_host_out', {
  rc: 'int32_t',
  in_place: 'uint32_t',
  rsp_file_count: 'uint32_t',
  bad_len: 'uint32_t',
  rsp: 'void *',
  rsp_len: 'uint64_t',
  rsp_files: 'void *',
});

export interface HostOutValue {
  rc: number;
  in_place: number;
  rsp_file_count: number;
  bad_len: number;
  rsp: bigint | null;
  rsp_len: number | bigint;
  rsp_files: bigint | null;
}

/** A pointer as koffi 3 gives it (BigInt address). */
export type Pointer = bigint;

/** The functions of build/native/libibp_host.so. */
export interface HostLibrary {
  readonly file: string;
  newCtx(): Pointer | null;
  freeCtx(ctx: Pointer): void;
  release(ctx: Pointer): void;
  call(fn: Pointer, ctx: Pointer, req: Buffer | null, reqLen: number, buf: Buffer, bufCap: number, input: HostInValue, out: Partial<HostOutValue>): number;
}

let host: HostLibrary | undefined;

/**
 * The host helper, loaded once per process. Checks that the built helper matches this file
 * (ABI version and struct sizes): a stale build gives IBP_ERR_NATIVE_MISSING, not a crash.
 */
export function hostLibrary(): HostLibrary {
  if (host) return host;
  const file = nativeLibrary('ibp_host');
  const lib = koffi.load(file);
  const u32 = (name: string) => (lib.func(`uint32_t ${name}(void)`) as () => number)();
  const checks: [string, number, number][] = [
    ['ABI version', u32('ibp_host_abi_version'), APP_ABI_VERSION],
    ['sizeof(ibp_host_in)', u32('ibp_host_in_size'), koffi.sizeof(HostIn)],
    ['sizeof(ibp_host_out)', u32('ibp_host_out_size'), koffi.sizeof(HostOut)],
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
    call: lib.func(
      'int32_t ibp_host_call(ibp_app_entry_fn *fn, ibp_app_ctx *ctx, const uint8_t *req, size_t req_len, uint8_t *buf, size_t buf_cap, const ibp_host_in *input, _Out_ ibp_host_out *out)',
    ) as HostLibrary['call'],
  };
  return host;
}

/**
 * JavaScript/TypeScript apps (issue 15): an app package that is an ES module (`--bin name.mjs`)
 * instead of a .so, run by the same app cache (ibas/app-cache.ts dispatches on the file type)
 * with the same lifecycle, context and limits. The API is lib/app/api.ts (`ibp-ts/app`).
 *
 *   load     the cache copies the package to a private path of its own (a new folder per load),
 *            exactly like a .so, and this module require()s the copy (Node 20.19+ loads an ES
 *            module synchronously this way; a module with top-level await is refused). A unique
 *            path is a fresh module instance: the ESM cache never hands back an older version.
 *            Module instances are not unloadable (V8 keeps them), so each hot update costs the
 *            module's code until the worker recycles (`mpm.max_process_count`).
 *   entries  main / init / clean / commit / rollback, the JS names of somain / soinit / soclean /
 *            socommit / sorollback (APP_CONTEXT_TABLE); `abiVersion` = ibp_app_abi_version.
 *   call     one entry point, synchronously on the worker's thread, under the same tier-1 alarm
 *            as a .so (a loop that never returns is ended by SIGALRM with the timeout answer).
 *            Returns 0 / undefined = ok, an integer = the app's error code. A throw, or a result
 *            that is not an integer, is IBP_ERR_APP_THREW (RC.APP_THREW) with the message; the
 *            stack goes to the app's log.
 *   async    an app whose entry points include an `async function` runs in an app thread of its
 *            own (worker_threads, ibas/app-js-thread.ts): the worker's synchronous path posts the
 *            call and blocks in Atomics.wait until the thread's event loop settles the Promise
 *            (a send-ahead wakes it early). The module is evaluated in the worker's thread too (to
 *            read its exports): keep top-level code free of side effects. A plain function that
 *            returns a Promise is IBP_ERR_APP_THREW ("declare it async"). The in-process harness
 *            (lib/app/testing.ts) awaits any Promise without a thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { IbpError, errorText } from '../lib/errors.js';
import { checkPlainFileName } from '../lib/home.js';
import { APP_CONTEXT_TABLE } from '../lib/app/context-table.js';
import { APP_ABI_VERSION, APP_FILE_NAME_MAX, APP_MAX_FILES, type AppContext, type AppEntry, type AppLog, type AppPhase } from '../lib/app/api.js';
import type { SymbolName } from './app-abi.js';

const requireCopy = createRequire(import.meta.url);

/** File name endings of JS app packages (the rest are .so). */
export const JS_PACKAGE_EXTS = ['.mjs'] as const;

export function isJsPackage(bin: string): boolean {
  return JS_PACKAGE_EXTS.some((e) => bin.endsWith(e));
}

/** somain → main, … from the ONE table. */
const ENTRY_OF = new Map<string, string>(APP_CONTEXT_TABLE.filter((r) => r.kind === 'entry').map((r) => [r.c, r.ts]));

/** What the host gives every call: the cache's side of the context. */
export interface JsHost {
  fileDir: string;
  thisNode: string;
  workerIndex: number;
  kv(key: string): string | undefined;
  config(app: string, key: string): string | undefined;
  log(app: string): AppLog;
  /** All of this node's key/values (for an app thread). */
  kvOf(): Iterable<readonly [string, string]>;
  /** The app's config record (for an app thread). */
  configOf(app: string): Iterable<readonly [string, string]>;
}

/** The per-call values (AppCallContext of app-cache.ts, with defaults filled). */
export interface JsCallInput {
  app: string;
  thisNode?: string;
  clientNode?: string;
  clientIp?: string;
  clientPort?: number;
  journal?: string;
  gtrid?: string;
  workerIndex?: number;
  timeoutMs?: number;
  timeout2Ms?: number;
  /** Called at once when the app sends its response ahead. */
  onSendAhead?: (response: Buffer, files: string[]) => void;
}

export interface JsCallOutput {
  rc: number;
  response: Buffer;
  files: string[];
  sentAhead: boolean;
}

/** One call's context: ibp_app_ctx in JS. */
class JsContext implements AppContext {
  readonly abiVersion = APP_ABI_VERSION;
  readonly phase: AppPhase;
  readonly request: Buffer;
  readonly fileDir: string;
  readonly requestFiles: readonly string[];
  readonly thisNode: string;
  readonly app: string;
  readonly clientNode: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly workerIndex: number;
  readonly journal: string;
  readonly gtrid: string;
  readonly timeoutMs: number;
  readonly timeout2Ms: number;
  readonly log: AppLog;
  readonly #host: JsHost;
  readonly #onSendAhead: JsCallInput['onSendAhead'];
  #chunks: Buffer[] = [];
  #length = 0;
  #files: string[] = [];
  #ahead = false;
  #open = true;

  constructor(host: JsHost, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]) {
    this.#host = host;
    this.phase = phase;
    this.request = request ?? Buffer.alloc(0);
    this.fileDir = host.fileDir;
    this.requestFiles = Object.freeze([...files]);
    this.thisNode = input.thisNode ?? host.thisNode;
    this.app = input.app;
    this.clientNode = input.clientNode ?? '';
    this.clientIp = input.clientIp ?? '';
    this.clientPort = input.clientPort ?? 0;
    this.workerIndex = input.workerIndex ?? host.workerIndex;
    this.journal = input.journal ?? '';
    this.gtrid = input.gtrid ?? '';
    this.timeoutMs = input.timeoutMs ?? 0;
    this.timeout2Ms = input.timeout2Ms ?? 0;
    this.log = host.log(input.app);
    this.#onSendAhead = input.onSendAhead;
  }

  get responseLength(): number { return this.#length; }
  get responseFiles(): readonly string[] { return this.#files; }
  get sentAhead(): boolean { return this.#ahead; }

  #live(what: string): void {
    if (!this.#open) throw new Error(`ctx.${what} after the call returned: a context is valid only during its call`);
    if (this.#ahead) throw new Error(`ctx.${what} after sendAhead(): the response is already sent`);
  }

  write(data: Uint8Array | string): void {
    this.#live('write');
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (b.length === 0) return;
    this.#chunks.push(Buffer.from(b)); // a copy: the app may reuse its buffer
    this.#length += b.length;
  }

  addFile(name: string): void {
    this.#live('addFile');
    checkPlainFileName(name);
    if (Buffer.byteLength(name) > APP_FILE_NAME_MAX) throw new Error(`response file name ${JSON.stringify(name)} is longer than ${APP_FILE_NAME_MAX} bytes`);
    if (this.#files.length >= APP_MAX_FILES) throw new Error(`more than ${APP_MAX_FILES} response files`);
    if (this.#files.includes(name)) throw new Error(`response file ${JSON.stringify(name)} added twice`);
    this.#files.push(name);
  }

  filePath(name: string): string {
    checkPlainFileName(name);
    return path.join(this.fileDir, name);
  }

  sendAhead(): void {
    this.#live('sendAhead');
    this.#ahead = true;
    this.#onSendAhead?.(this.response(), [...this.#files]);
  }

  kv(key: string): string | undefined {
    return this.#host.kv(String(key));
  }

  config(key: string): string | undefined {
    return this.#host.config(this.app, String(key));
  }

  /** @internal */
  response(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#length)];
    return this.#chunks[0]!;
  }

  /** @internal — the call returned: nothing of it may be used any more. */
  close(): void {
    this.#open = false;
  }
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
const isAsyncFunction = (f: unknown): boolean => typeof f === 'function' && (f as { constructor?: { name?: string } }).constructor?.name === 'AsyncFunction';

/** Messages of the app thread (ibas/app-js-thread.ts) to the worker. */
export type ThreadReply =
  | { type: 'loaded' }
  | { type: 'ahead'; response: Uint8Array; files: string[] }
  | { type: 'done'; rc: number; response: Uint8Array; files: string[]; sentAhead: boolean; log: ThreadLogLine[] }
  | { type: 'threw'; code: string; message: string; log: ThreadLogLine[] };
export interface ThreadLogLine { level: 'debug' | 'info' | 'warn' | 'error'; msg: string }
/** A call the worker posts to the app thread. */
export interface ThreadCall {
  symbol: SymbolName;
  phase: AppPhase;
  input: Omit<JsCallInput, 'onSendAhead'>;
  request: Uint8Array | null;
  files: string[];
  host: { fileDir: string; thisNode: string; workerIndex: number };
  /** This node's key/values, sent when they changed since the last call. */
  kv?: (readonly [string, string])[];
  config: (readonly [string, string])[];
}

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const THREAD_FILE = new URL(`./app-js-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
/** Longest wait for the app thread outside main (load, init, clean); main has the tier-1 alarm. */
const THREAD_LIFECYCLE_MS = 30_000;

/** The worker's side of an app thread: synchronous calls over a port and a shared counter. */
class AppThread {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #signal: Int32Array;
  readonly #host: JsHost;
  #kvSent: string | undefined;

  constructor(copy: string, host: JsHost) {
    this.#host = host;
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#signal = new Int32Array(new SharedArrayBuffer(4));
    this.#worker = new Worker(THREAD_FILE, { workerData: { copy, port: port2, signal: this.#signal }, transferList: [port2] });
    this.#worker.unref();
    this.#worker.on('error', () => undefined); // a dead thread shows as no answer (see #next)
    const first = this.#next(Date.now() + THREAD_LIFECYCLE_MS, 'loading the module');
    if (first.type !== 'loaded') {
      void this.#worker.terminate();
      throw new Error(first.type === 'threw' ? first.message : `unexpected ${first.type} from the app thread`);
    }
  }

  /** The next message of the thread; blocks this thread (the worker's) meanwhile. */
  #next(deadline: number, what: string): ThreadReply {
    for (;;) {
      let m = receiveMessageOnPort(this.#port);
      if (m) return m.message as ThreadReply;
      const seen = Atomics.load(this.#signal, 0);
      m = receiveMessageOnPort(this.#port);
      if (m) return m.message as ThreadReply;
      if (Date.now() > deadline) throw new Error(`no answer from the app thread while ${what} (it died or hangs)`);
      Atomics.wait(this.#signal, 0, seen, 100);
    }
  }

  call(symbol: SymbolName, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]): ThreadReply {
    const { onSendAhead, ...plain } = input;
    const kvs = [...this.#host.kvOf()];
    const kvKey = JSON.stringify(kvs);
    const msg: ThreadCall = {
      symbol, phase, input: plain, request, files: [...files],
      host: { fileDir: this.#host.fileDir, thisNode: this.#host.thisNode, workerIndex: this.#host.workerIndex },
      config: [...this.#host.configOf(input.app)],
    };
    if (kvKey !== this.#kvSent) msg.kv = kvs;
    this.#port.postMessage(msg);
    this.#kvSent = kvKey;
    const ms = phase === 2 && input.timeout2Ms ? input.timeout2Ms * 2 + 5000 : THREAD_LIFECYCLE_MS;
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.#next(deadline, `running ${ENTRY_OF.get(symbol) ?? symbol}`);
      if (r.type !== 'ahead') return r;
      onSendAhead?.(toBuffer(r.response), r.files);
    }
  }

  close(): void {
    void this.#worker.terminate();
  }
}

/** One loaded JS app module (the JS counterpart of a dlopen'ed .so). */
export class JsApp {
  readonly #entries: Map<SymbolName, AppEntry>;
  readonly #host: JsHost;
  readonly #thread: AppThread | undefined;
  readonly file: string;

  private constructor(file: string, entries: Map<SymbolName, AppEntry>, host: JsHost, thread?: AppThread) {
    this.file = file;
    this.#entries = entries;
    this.#host = host;
    this.#thread = thread;
  }

  /** The app runs in an app thread of its own (it has async entry points). */
  get threaded(): boolean { return this.#thread !== undefined; }

  /** Stop the app thread, if any (after clean). */
  close(): void {
    this.#thread?.close();
  }

  /**
   * Load the module at `copy` (a private copy with a unique path). Throws a plain Error whose
   * message says why it is refused (the cache wraps it in IBP_ERR_APP_LOAD).
   */
  static load(copy: string, host: JsHost, opts: { inThread?: boolean } = {}): JsApp {
    let mod: Record<string, unknown>;
    try {
      mod = requireCopy(copy) as Record<string, unknown>;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_REQUIRE_ASYNC_MODULE') throw new Error('it uses top-level await: an app module must load synchronously (move the await into init or main)');
      throw new Error(`it does not load as an ES module: ${errorText(e)}`);
    }
    const entries = new Map<SymbolName, AppEntry>();
    for (const [symbol, name] of ENTRY_OF) {
      if (symbol === 'ibp_app_abi_version') continue;
      const f = mod[name];
      if (f === undefined) continue;
      if (typeof f !== 'function') throw new Error(`its export "${name}" is not a function`);
      entries.set(symbol as SymbolName, f as AppEntry);
    }
    if (!entries.has('somain')) throw new Error('it does not export a function main (the JS name of somain)');
    const abi = mod.abiVersion;
    if (abi !== undefined && abi !== APP_ABI_VERSION) throw new Error(`it was written for app ABI ${String(abi)}, this server speaks ${APP_ABI_VERSION}`);
    if (!opts.inThread && [...entries.values()].some(isAsyncFunction)) return new JsApp(copy, entries, host, new AppThread(copy, host));
    return new JsApp(copy, entries, host);
  }

  has(symbol: SymbolName): boolean {
    return symbol === 'ibp_app_abi_version' || this.#entries.has(symbol);
  }

  /** Call one entry point synchronously (the worker's path). */
  invoke(symbol: SymbolName, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]): JsCallOutput {
    if (this.#thread) return this.#invokeThread(symbol, phase, input, request, files);
    const { ctx, result } = this.#start(symbol, phase, input, request, files);
    if (isThenable(result)) {
      ctx.close();
      (result as Promise<unknown>).then(undefined, () => undefined); // nobody awaits it here
      throw this.#threw(symbol, input.app, new Error(`${ENTRY_OF.get(symbol)} returned a Promise but is not declared async: declare it \`async function\` (the app then runs in an app thread where the worker awaits it)`));
    }
    return this.#finish(symbol, ctx, result);
  }

  /** Call one entry point and await it when it returns a Promise (the in-process harness). */
  async invokeAsync(symbol: SymbolName, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]): Promise<JsCallOutput> {
    const { ctx, result } = this.#start(symbol, phase, input, request, files);
    let value: unknown = result;
    if (isThenable(result)) {
      try {
        value = await result;
      } catch (e) {
        ctx.close();
        throw this.#threw(symbol, input.app, e);
      }
    }
    return this.#finish(symbol, ctx, value);
  }

  #invokeThread(symbol: SymbolName, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]): JsCallOutput {
    if (!this.#entries.has(symbol)) throw new IbpError('IBP_ERR_APP_UNLOADED', { app: input.app, file: this.file });
    let r: ThreadReply;
    try {
      r = this.#thread!.call(symbol, phase, input, request, files);
    } catch (e) {
      throw this.#threw(symbol, input.app, e);
    }
    if (r.type === 'done' || r.type === 'threw') {
      const log = this.#host.log(input.app);
      for (const l of r.log) log[l.level](l.msg);
    }
    if (r.type === 'done') return { rc: r.rc, response: toBuffer(r.response), files: r.files, sentAhead: r.sentAhead };
    if (r.type === 'threw') throw new IbpError('IBP_ERR_APP_THREW', { app: input.app, entry: ENTRY_OF.get(symbol) ?? symbol, detail: r.message });
    throw this.#threw(symbol, input.app, new Error(`unexpected ${r.type} from the app thread`));
  }

  /** @internal — the thread's side: run one call and report (ibas/app-js-thread.ts). */
  async runInThread(call: ThreadCall, onAhead: (response: Buffer, files: string[]) => void): Promise<JsCallOutput> {
    return this.invokeAsync(call.symbol, call.phase, { ...call.input, onSendAhead: onAhead }, call.request ? toBuffer(call.request) : null, call.files);
  }

  #start(symbol: SymbolName, phase: AppPhase, input: JsCallInput, request: Buffer | null, files: readonly string[]): { ctx: JsContext; result: unknown } {
    const fn = this.#entries.get(symbol);
    if (!fn) throw new IbpError('IBP_ERR_APP_UNLOADED', { app: input.app, file: this.file });
    const ctx = new JsContext(this.#host, phase, input, request, files);
    try {
      return { ctx, result: fn(ctx) };
    } catch (e) {
      ctx.close();
      throw this.#threw(symbol, input.app, e);
    }
  }

  #finish(symbol: SymbolName, ctx: JsContext, result: unknown): JsCallOutput {
    ctx.close();
    let rc: number;
    if (result === undefined) rc = 0;
    else if (typeof result === 'number' && Number.isInteger(result) && result >= -0x80000000 && result <= 0x7fffffff) rc = result;
    else throw this.#threw(symbol, ctx.app, new Error(`it returned ${typeof result === 'object' ? 'an object' : JSON.stringify(result)}, not an integer result code`));
    return { rc, response: ctx.response(), files: [...ctx.responseFiles], sentAhead: ctx.sentAhead };
  }

  #threw(symbol: SymbolName, app: string, e: unknown): IbpError {
    const entry = ENTRY_OF.get(symbol) ?? symbol;
    this.#host.log(app).error(`app threw in ${entry} , reason[${errorText(e)}] stack[${(e as Error)?.stack ?? ''}]`);
    return new IbpError('IBP_ERR_APP_THREW', { app, entry, detail: errorText(e) });
  }
}

/** This installation of ibp-ts: the nearest folder up from this module whose package.json is it. */
function packageRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'ibp-ts') return dir;
    } catch {
      // no package.json here
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * JS apps import the framework as `ibp-ts/…` (lib/app, lib/appfw). They are loaded from private
 * copies, where Node resolves bare names from the copy's folder upwards: `node_modules/ibp-ts` in
 * the private folder links to the running installation, so the app gets the framework of the
 * server that runs it.
 */
export function linkFramework(dir: string): void {
  const root = packageRoot();
  if (!root) return;
  const nm = path.join(dir, 'node_modules');
  fs.mkdirSync(nm, { recursive: true, mode: 0o700 });
  try {
    fs.symlinkSync(root, path.join(nm, 'ibp-ts'), 'dir');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

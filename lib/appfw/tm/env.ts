/**
 * The transaction environment (IBP's struct TransEnv): the one argument of every TM function.
 * It carries the transaction code, the named structure-block bus between functions, the
 * response code / description setters, the database handle of the phased template, the trace of
 * functions run and the app's log.
 *
 *   const REQ = defineBlock<transfer_req>('transfer_req');     // a typed block name
 *   te.appendBlock(REQ, req);                                 // IBTMAppendStructBlock
 *   const req = te.getBlock(REQ);                             // IBTMGetStructBlock (IBP_ERR_TM_BLOCK if absent)
 *   const acc = te.appendGetBlock(ACC, () => ({ balance: 0n }));  // IBTMAppendGetStructBlock
 *   te.setResponse(1001, 'insufficient funds');              // IBTMFormatResponseInfo
 */
import { IbpError } from '../../errors.js';

/** The log a TransEnv writes to (an app's ctx.log fits). */
export interface TmLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A typed name on the structure-block bus (IBP names blocks by string and checks their size). */
export interface BlockKey<T> {
  readonly name: string;
  /** Optional check of a value read back (IBP checks struct_size): refuse what is not a T. */
  readonly guard?: (v: unknown) => v is T;
  /** Phantom, for the type only. */
  readonly __type?: T;
}

export function defineBlock<T>(name: string, guard?: (v: unknown) => v is T): BlockKey<T> {
  return guard ? { name, guard } : { name };
}

/** One line of the trace: a function that ran, where, with what result. */
export interface TraceEntry {
  readonly depth: number;
  readonly desc: string;
  readonly func: string;
  readonly para?: string;
  readonly rc: number;
}

export interface TransEnvOptions {
  /** The transaction code (IF_IN_TRANSCODES / IF_NOTIN_TRANSCODES test it). */
  transCode: string;
  log: TmLog;
  /** Writes the response code / description into the response message (IBP registers field addresses). */
  onResponse?: (code: number, desc: string) => void;
  /** The database of the phased template, if any (what TM functions run their SQL on). */
  db?: unknown;
}

/** Deepest function-array nesting (IBP's execute_depth guard against a tree that includes itself). */
export const MAX_EXECUTE_DEPTH = 64;

export class TransEnv {
  readonly transCode: string;
  readonly log: TmLog;
  readonly trace: TraceEntry[] = [];
  /** Last function failure (a throw), for the template's log and journal. */
  lastError: IbpError | undefined;
  #blocks = new Map<string, unknown>();
  #depth = 0;
  #code = 0;
  #desc = '';
  #responseSet = false;
  readonly #onResponse: ((code: number, desc: string) => void) | undefined;
  readonly #db: unknown;

  constructor(opts: TransEnvOptions) {
    this.transCode = opts.transCode;
    this.log = opts.log;
    this.#onResponse = opts.onResponse;
    this.#db = opts.db;
  }

  /** The template's database handle, typed by the caller (e.g. te.dbAs<Database>()). */
  dbAs<D>(): D {
    if (this.#db === undefined) throw new IbpError('IBP_ERR_TM_BLOCK', { name: '(database)', detail: 'this transaction runs without a database: give the template one' });
    return this.#db as D;
  }

  appendBlock<T>(key: BlockKey<T>, value: T): T {
    if (this.#blocks.has(key.name)) throw new IbpError('IBP_ERR_TM_BLOCK', { name: key.name, detail: 'is already on the bus: append it once, then get it' });
    this.#blocks.set(key.name, value);
    return value;
  }

  getBlock<T>(key: BlockKey<T>): T {
    if (!this.#blocks.has(key.name)) throw new IbpError('IBP_ERR_TM_BLOCK', { name: key.name, detail: 'is not on the bus: a function before this one must append it' });
    const v = this.#blocks.get(key.name);
    if (key.guard && !key.guard(v)) throw new IbpError('IBP_ERR_TM_BLOCK', { name: key.name, detail: 'holds a value of another shape (two versions of one block?)' });
    return v as T;
  }

  hasBlock(key: BlockKey<unknown>): boolean {
    return this.#blocks.has(key.name);
  }

  appendGetBlock<T>(key: BlockKey<T>, init: () => T): T {
    return this.#blocks.has(key.name) ? this.getBlock(key) : this.appendBlock(key, init());
  }

  /** IBTMFormatResponseInfo: the transaction's response code and description. */
  setResponse(code: number, desc: string): void {
    this.#code = code;
    this.#desc = desc;
    this.#responseSet = true;
    this.#onResponse?.(code, desc);
  }

  get responseCode(): number {
    return this.#code;
  }

  get responseDesc(): string {
    return this.#desc;
  }

  /** Whether a function set the response (the template only fills in a default when none did). */
  get responseSet(): boolean {
    return this.#responseSet;
  }

  /** @internal tree.ts: one function call deeper. */
  enter(): void {
    if (++this.#depth > MAX_EXECUTE_DEPTH) {
      this.#depth--;
      throw new IbpError('IBP_ERR_TM_TREE', { tree: '(execution)', detail: `nested deeper than ${MAX_EXECUTE_DEPTH}: does an array include itself?` });
    }
  }

  /** @internal */
  leave(): void {
    this.#depth--;
  }

  get depth(): number {
    return this.#depth;
  }

  /** @internal tree.ts: a function ran. Logged at debug level. */
  recordTrace(desc: string, func: string, para: string | undefined, rc: number): void {
    const entry: TraceEntry = { depth: this.#depth, desc, func, ...(para !== undefined ? { para } : {}), rc };
    this.trace.push(entry);
    this.log.debug(`tm: ${'  '.repeat(this.#depth)}[${desc}] ${func}${para !== undefined ? `(${para})` : ''} rc=${rc}`);
  }
}

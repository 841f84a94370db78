/**
 * Function trees (IBP's ibtm, the transaction-management layer): a transaction is a list of small
 * TM functions, each `(te: TransEnv, para?) => number | void` (0 / undefined = ok, anything else =
 * the function reports an error), grouped into function arrays written with IBP's own constructs:
 *
 *   const TFA_BP = funcArray('business processing', [
 *     FUNC('check amount', checkAmount),
 *     FUNC_PARA('limit by channel', checkLimit, 'WEB'),
 *     FUNCARRAY('fees', TFA_FEES),
 *     IF_IN_TRANSCODES_THEN_FUNC('only transfers', 'TRANSFER,TRANSFER2', f3),
 *     IF_NOTIN_TRANSCODES_THEN_FUNCARRAY('others', 'TRANSFER', TFA_OTHER),
 *     IF_FUNC_THEN('lookup cache', lookupCache),       // body runs when lookupCache REPORTS AN ERROR
 *       FUNC('load from db', loadFromDb),
 *     ELSE,
 *       FUNC('count hit', countHit),
 *     ENDIF,
 *     RETURN,                                            // ends the array here, ok
 *   ]);
 *   executeFuncArray(te, TFA_BP);                       // IBTMExecuteFuncArray
 *
 * funcArray() checks the IF / ELSE / ENDIF nesting once (IBP_ERR_TM_TREE) and compiles the flat
 * list into a tree. Execution stops at the first function that reports an error (outside an IF
 * condition) and returns its code; a function that throws is logged and reported as TM_THREW.
 * Every function run is appended to te.trace and logged at debug level.
 *
 * Functions are synchronous, like the entry points of an app in an ibas worker (lib/app/api.ts).
 */
import { IbpError, errorText } from '../../errors.js';
import type { TransEnv } from './env.js';

/** A TM function (IBP `int TransFunc(struct TransEnv *)`): 0 / undefined = ok. */
export type TransFunc = (te: TransEnv, para?: string) => number | void;

/** What a function that threw reports (a system error: the template rolls back). */
export const TM_THREW = -1;

type Action =
  | { readonly kind: 'func'; readonly fn: TransFunc; readonly para?: string }
  | { readonly kind: 'array'; readonly array: FuncArray };

type Condition =
  | { readonly kind: 'always' }
  | { readonly kind: 'in' | 'notin'; readonly codes: ReadonlySet<string> };

/** One entry as written (an element of IBP's struct TransFuncArray[]). */
export type FuncEntry =
  | { readonly op: 'do'; readonly desc: string; readonly cond: Condition; readonly action: Action }
  | { readonly op: 'if'; readonly desc: string; readonly action: Action }
  | { readonly op: 'else' }
  | { readonly op: 'endif' }
  | { readonly op: 'return' };

type Node =
  | { readonly kind: 'do'; readonly desc: string; readonly cond: Condition; readonly action: Action }
  | { readonly kind: 'if'; readonly desc: string; readonly action: Action; readonly then: Node[]; readonly otherwise: Node[] }
  | { readonly kind: 'return' };

/** A compiled function array. */
export interface FuncArray {
  readonly desc: string;
  readonly nodes: readonly Node[];
}

function inCodes(list: string | readonly string[]): Condition {
  const items = (typeof list === 'string' ? list.split(/[,\s]+/) : list).filter((c) => c !== '');
  return { kind: 'in', codes: new Set(items) };
}
function notInCodes(list: string | readonly string[]): Condition {
  const c = inCodes(list);
  return c.kind === 'in' ? { kind: 'notin', codes: c.codes } : c;
}

const always: Condition = { kind: 'always' };
const fn = (f: TransFunc, para?: string): Action => ({ kind: 'func', fn: f, ...(para !== undefined ? { para } : {}) });
const arr = (a: FuncArray): Action => ({ kind: 'array', array: a });
type Codes = string | readonly string[];

export const FUNC = (desc: string, f: TransFunc): FuncEntry => ({ op: 'do', desc, cond: always, action: fn(f) });
export const FUNC_PARA = (desc: string, f: TransFunc, para: string): FuncEntry => ({ op: 'do', desc, cond: always, action: fn(f, para) });
export const FUNCARRAY = (desc: string, a: FuncArray): FuncEntry => ({ op: 'do', desc, cond: always, action: arr(a) });

export const IF_IN_TRANSCODES_THEN_FUNC = (desc: string, c: Codes, f: TransFunc): FuncEntry => ({ op: 'do', desc, cond: inCodes(c), action: fn(f) });
export const IF_IN_TRANSCODES_THEN_FUNC_PARA = (desc: string, c: Codes, f: TransFunc, para: string): FuncEntry => ({ op: 'do', desc, cond: inCodes(c), action: fn(f, para) });
export const IF_IN_TRANSCODES_THEN_FUNCARRAY = (desc: string, c: Codes, a: FuncArray): FuncEntry => ({ op: 'do', desc, cond: inCodes(c), action: arr(a) });
export const IF_NOTIN_TRANSCODES_THEN_FUNC = (desc: string, c: Codes, f: TransFunc): FuncEntry => ({ op: 'do', desc, cond: notInCodes(c), action: fn(f) });
export const IF_NOTIN_TRANSCODES_THEN_FUNC_PARA = (desc: string, c: Codes, f: TransFunc, para: string): FuncEntry => ({ op: 'do', desc, cond: notInCodes(c), action: fn(f, para) });
export const IF_NOTIN_TRANSCODES_THEN_FUNCARRAY = (desc: string, c: Codes, a: FuncArray): FuncEntry => ({ op: 'do', desc, cond: notInCodes(c), action: arr(a) });

/** The entries up to ELSE / ENDIF run when the function REPORTS AN ERROR (IBP's IF_FUNC_THEN). */
export const IF_FUNC_THEN = (desc: string, f: TransFunc): FuncEntry => ({ op: 'if', desc, action: fn(f) });
export const IF_FUNC_PARA_THEN = (desc: string, f: TransFunc, para: string): FuncEntry => ({ op: 'if', desc, action: fn(f, para) });
export const IF_FUNCARRAY_THEN = (desc: string, a: FuncArray): FuncEntry => ({ op: 'if', desc, action: arr(a) });
export const ELSE: FuncEntry = { op: 'else' };
export const ENDIF: FuncEntry = { op: 'endif' };
export const RETURN: FuncEntry = { op: 'return' };

function treeError(tree: string, detail: string): IbpError {
  return new IbpError('IBP_ERR_TM_TREE', { tree, detail });
}

/** Compiles a flat list of entries into a function array; IBP_ERR_TM_TREE when IF / ELSE / ENDIF do not nest. */
export function funcArray(desc: string, entries: readonly FuncEntry[]): FuncArray {
  let pos = 0;
  const block = (inIf: boolean): { nodes: Node[]; end: 'else' | 'endif' | 'eof' } => {
    const nodes: Node[] = [];
    while (pos < entries.length) {
      const e = entries[pos++] as FuncEntry;
      switch (e.op) {
        case 'do': nodes.push({ kind: 'do', desc: e.desc, cond: e.cond, action: e.action }); break;
        case 'return': nodes.push({ kind: 'return' }); break;
        case 'else':
        case 'endif':
          if (!inIf) throw treeError(desc, `${e.op.toUpperCase()} at entry ${pos} without IF_*_THEN`);
          return { nodes, end: e.op };
        case 'if': {
          const then = block(true);
          let otherwise: Node[] = [];
          if (then.end === 'else') {
            const o = block(true);
            if (o.end !== 'endif') throw treeError(desc, `IF "${e.desc}": ${o.end === 'else' ? 'a second ELSE' : 'no ENDIF'}`);
            otherwise = o.nodes;
          } else if (then.end !== 'endif') {
            throw treeError(desc, `IF "${e.desc}" has no ENDIF`);
          }
          nodes.push({ kind: 'if', desc: e.desc, action: e.action, then: then.nodes, otherwise });
          break;
        }
      }
    }
    return { nodes, end: 'eof' };
  };
  return { desc, nodes: block(false).nodes };
}

const RETURNED = Symbol('returned');

/** Runs one action; returns its code (0 = ok). */
function run(te: TransEnv, desc: string, a: Action): number {
  if (a.kind === 'array') return executeFuncArray(te, a.array);
  const name = a.fn.name || '(anonymous)';
  let rc: number;
  try {
    const r = a.fn(te, a.para);
    rc = r === undefined ? 0 : r;
    if (!Number.isInteger(rc)) throw new TypeError(`returned ${String(r)}, not an integer (a TM function is synchronous)`);
  } catch (e) {
    const err = new IbpError('IBP_ERR_TM_FUNC', { func: name, desc, detail: errorText(e) }, { cause: e });
    te.log.error(err.message);
    te.lastError = err;
    rc = TM_THREW;
  }
  te.recordTrace(desc, name, a.para, rc);
  return rc;
}

function runNodes(te: TransEnv, nodes: readonly Node[]): number | typeof RETURNED {
  for (const n of nodes) {
    if (n.kind === 'return') return RETURNED;
    if (n.kind === 'do') {
      if (n.cond.kind !== 'always' && n.cond.codes.has(te.transCode) !== (n.cond.kind === 'in')) continue;
      const rc = run(te, n.desc, n.action);
      if (rc !== 0) return rc;
      continue;
    }
    const failed = run(te, n.desc, n.action) !== 0;
    const r = runNodes(te, failed ? n.then : n.otherwise);
    if (r !== 0) return r;
  }
  return 0;
}

/** IBTMExecuteFuncArray: runs a function array; 0, or the code of the first function that reported an error. */
export function executeFuncArray(te: TransEnv, fa: FuncArray | undefined): number {
  if (fa === undefined) return 0;
  te.enter();
  te.log.debug(`tm: enter [${fa.desc}]`);
  let r: number | typeof RETURNED;
  try {
    r = runNodes(te, fa.nodes);
  } finally {
    te.leave();
  }
  const rc = r === RETURNED ? 0 : r;
  te.log.debug(`tm: leave [${fa.desc}] rc=${rc}`);
  return rc;
}

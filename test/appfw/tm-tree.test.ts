/**
 * Function trees (ibtm): every construct — FUNC, FUNC_PARA, FUNCARRAY, IF_IN_TRANSCODES_THEN_*,
 * IF_NOTIN_TRANSCODES_THEN_*, IF_FUNC_THEN / IF_FUNC_PARA_THEN / IF_FUNCARRAY_THEN … ELSE …
 * ENDIF (the IF body runs when the function reports an error), RETURN; stop at the first error;
 * a throw as TM_THREW; the nesting checked once; the structure bus; the response setters; the
 * trace (and its debug log lines).
 */
import t from 'tap';
import {
  FUNC, FUNC_PARA, FUNCARRAY, IF_IN_TRANSCODES_THEN_FUNC, IF_IN_TRANSCODES_THEN_FUNC_PARA, IF_IN_TRANSCODES_THEN_FUNCARRAY,
  IF_NOTIN_TRANSCODES_THEN_FUNC, IF_NOTIN_TRANSCODES_THEN_FUNC_PARA, IF_NOTIN_TRANSCODES_THEN_FUNCARRAY,
  IF_FUNC_THEN, IF_FUNC_PARA_THEN, IF_FUNCARRAY_THEN, ELSE, ENDIF, RETURN, TM_THREW, executeFuncArray, funcArray, type TransFunc,
} from '../../lib/appfw/tm/tree.js';
import { defineBlock, TransEnv, MAX_EXECUTE_DEPTH, type TmLog } from '../../lib/appfw/tm/env.js';

function logger(): TmLog & { lines: string[] } {
  const lines: string[] = [];
  const put = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return { lines, debug: put('debug'), info: put('info'), warn: put('warn'), error: put('error') };
}

function env(transCode = 'TX1'): TransEnv & { ran: string[] } {
  const te = new TransEnv({ transCode, log: logger() }) as TransEnv & { ran: string[] };
  te.ran = [];
  return te;
}

/** A function that records its run (with its parameter) and returns rc. */
function f(name: string, rc = 0): TransFunc {
  const fn = (te: TransEnv, para?: string): number => {
    (te as TransEnv & { ran: string[] }).ran.push(para === undefined ? name : `${name}(${para})`);
    return rc;
  };
  Object.defineProperty(fn, 'name', { value: name });
  return fn;
}

t.test('FUNC, FUNC_PARA, FUNCARRAY run in order, parameters per function', async (t) => {
  const inner = funcArray('inner', [FUNC('i1', f('i1')), FUNC_PARA('i2', f('i2'), 'P2')]);
  const te = env();
  t.equal(executeFuncArray(te, funcArray('top', [FUNC('a', f('a')), FUNCARRAY('inner', inner), FUNC_PARA('b', f('b'), 'x,y')])), 0);
  t.same(te.ran, ['a', 'i1', 'i2(P2)', 'b(x,y)']);
  t.same(te.trace.map((e) => [e.depth, e.func, e.para ?? null, e.rc]), [[1, 'a', null, 0], [2, 'i1', null, 0], [2, 'i2', 'P2', 0], [1, 'b', 'x,y', 0]], 'the trace says what ran, how deep, with what');
  t.ok((te.log as ReturnType<typeof logger>).lines.some((l) => /^debug tm: .*\[i2\] i2\(P2\) rc=0$/.test(l)), 'each run is logged at debug level');
});

t.test('the first function that reports an error stops the array; its code is the result', async (t) => {
  const te = env();
  t.equal(executeFuncArray(te, funcArray('top', [FUNC('a', f('a')), FUNCARRAY('sub', funcArray('sub', [FUNC('b', f('b', 7)), FUNC('c', f('c'))])), FUNC('d', f('d'))])), 7);
  t.same(te.ran, ['a', 'b']);
});

t.test('IF_IN_TRANSCODES_THEN_* / IF_NOTIN_TRANSCODES_THEN_* test the transaction code', async (t) => {
  const sub = funcArray('sub', [FUNC('s', f('s'))]);
  const tree = funcArray('codes', [
    IF_IN_TRANSCODES_THEN_FUNC('in', 'TX1,TX2', f('in')),
    IF_IN_TRANSCODES_THEN_FUNC_PARA('in-para', ['TX1'], f('inp'), 'p'),
    IF_IN_TRANSCODES_THEN_FUNCARRAY('in-array', 'TX2 TX3', sub),
    IF_NOTIN_TRANSCODES_THEN_FUNC('notin', 'TX2', f('notin')),
    IF_NOTIN_TRANSCODES_THEN_FUNC_PARA('notin-para', 'TX1', f('notinp'), 'q'),
    IF_NOTIN_TRANSCODES_THEN_FUNCARRAY('notin-array', 'TX1', sub),
  ]);
  const a = env('TX1');
  executeFuncArray(a, tree);
  t.same(a.ran, ['in', 'inp(p)', 'notin']);
  const b = env('TX3');
  executeFuncArray(b, tree);
  t.same(b.ran, ['s', 'notin', 'notinp(q)', 's']);
});

t.test('IF_FUNC_THEN … ELSE … ENDIF: the IF body runs when the function REPORTS AN ERROR', async (t) => {
  const tree = (cond: TransFunc) => funcArray('if', [
    IF_FUNC_THEN('cond', cond),
    FUNC('then', f('then')),
    ELSE,
    FUNC('else', f('else')),
    ENDIF,
    FUNC('after', f('after')),
  ]);
  const err = env();
  t.equal(executeFuncArray(err, tree(f('cond', 3))), 0, 'the condition\'s own error does not fail the array');
  t.same(err.ran, ['cond', 'then', 'after']);
  const ok = env();
  executeFuncArray(ok, tree(f('cond', 0)));
  t.same(ok.ran, ['cond', 'else', 'after']);
  const noElse = env();
  executeFuncArray(noElse, funcArray('no else', [IF_FUNC_PARA_THEN('cond', f('cond'), 'pp'), FUNC('then', f('then')), ENDIF, FUNC('after', f('after'))]));
  t.same(noElse.ran, ['cond(pp)', 'after'], 'IF without ELSE, function with a parameter');
  const arr = env();
  executeFuncArray(arr, funcArray('array cond', [IF_FUNCARRAY_THEN('cond array', funcArray('c', [FUNC('c1', f('c1')), FUNC('c2', f('c2', -5))])), FUNC('then', f('then')), ELSE, FUNC('else', f('else')), ENDIF]));
  t.same(arr.ran, ['c1', 'c2', 'then'], 'IF_FUNCARRAY_THEN: an error in the array selects the IF body');
  const nested = env();
  executeFuncArray(nested, funcArray('nested', [
    IF_FUNC_THEN('outer', f('outer', 1)),
    IF_FUNC_THEN('inner', f('inner', 0)), FUNC('x', f('x')), ELSE, FUNC('y', f('y')), ENDIF,
    ELSE, FUNC('z', f('z')), ENDIF,
  ]));
  t.same(nested.ran, ['outer', 'inner', 'y'], 'IFs nest');
  const failing = env();
  t.equal(executeFuncArray(failing, funcArray('body fails', [IF_FUNC_THEN('c', f('c', 1)), FUNC('b', f('b', 9)), ENDIF, FUNC('never', f('never'))])), 9, 'an error inside the body stops the array');
});

t.test('RETURN ends its array with success; the enclosing array goes on', async (t) => {
  const te = env();
  const sub = funcArray('sub', [FUNC('s1', f('s1')), RETURN, FUNC('s2', f('s2'))]);
  t.equal(executeFuncArray(te, funcArray('top', [FUNCARRAY('sub', sub), FUNC('a', f('a')), IF_FUNC_THEN('c', f('c', 1)), RETURN, ENDIF, FUNC('never', f('never'))])), 0);
  t.same(te.ran, ['s1', 'a', 'c']);
});

t.test('a throw is TM_THREW with IBP_ERR_TM_FUNC; a non-integer result too', async (t) => {
  const te = env();
  const boom: TransFunc = () => { throw new Error('disk on fire'); };
  t.equal(executeFuncArray(te, funcArray('t', [FUNC('boom', boom), FUNC('never', f('never'))])), TM_THREW);
  t.equal(te.lastError?.code, 'IBP_ERR_TM_FUNC');
  t.match(te.lastError?.message, /function boom \(boom\) threw: disk on fire/);
  const asyncFn = (async () => 0) as unknown as TransFunc;
  t.equal(executeFuncArray(te, funcArray('t', [FUNC('async', asyncFn)])), TM_THREW, 'an async function is refused (TM functions are synchronous)');
  t.match(te.lastError?.message, /not an integer/);
});

t.test('IF / ELSE / ENDIF nesting is checked when the array is built', async (t) => {
  t.throws(() => funcArray('x', [ELSE]), { code: 'IBP_ERR_TM_TREE', message: /function array x: ELSE at entry 1 without IF/ });
  t.throws(() => funcArray('x', [ENDIF]), { code: 'IBP_ERR_TM_TREE' });
  t.throws(() => funcArray('x', [IF_FUNC_THEN('c', f('c')), FUNC('a', f('a'))]), { code: 'IBP_ERR_TM_TREE', message: /no ENDIF/ });
  t.throws(() => funcArray('x', [IF_FUNC_THEN('c', f('c')), ELSE, ELSE, ENDIF]), { code: 'IBP_ERR_TM_TREE', message: /second ELSE/ });
});

t.test('an array that includes itself ends at the depth limit', async (t) => {
  const te = env();
  const nodes: Parameters<typeof funcArray>[1] = [];
  const self = funcArray('self', nodes);
  (self.nodes as unknown[]).push({ kind: 'do', desc: 'me', cond: { kind: 'always' }, action: { kind: 'array', array: self } });
  t.throws(() => executeFuncArray(te, self), { code: 'IBP_ERR_TM_TREE', message: new RegExp(`deeper than ${MAX_EXECUTE_DEPTH}`) });
  t.equal(te.depth, 0, 'the depth is unwound');
});

t.test('the structure bus: typed named blocks between functions', async (t) => {
  interface Acc { id: string; balance: bigint }
  const ACC = defineBlock<Acc>('account', (v): v is Acc => typeof v === 'object' && v !== null && typeof (v as Acc).balance === 'bigint');
  const te = env();
  const put: TransFunc = (e) => { e.appendBlock(ACC, { id: 'A1', balance: 10n }); };
  const add: TransFunc = (e) => { e.getBlock(ACC).balance += 5n; };
  const twice: TransFunc = (e) => e.appendGetBlock(ACC, () => ({ id: 'new', balance: 0n })).id === 'A1' ? 0 : 1;
  t.equal(executeFuncArray(te, funcArray('bus', [FUNC('put', put), FUNC('add', add), FUNC('twice', twice)])), 0);
  t.equal(te.getBlock(ACC).balance, 15n);
  t.throws(() => te.appendBlock(ACC, { id: 'x', balance: 0n }), { code: 'IBP_ERR_TM_BLOCK', message: /already on the bus/ });
  t.throws(() => te.getBlock(defineBlock<string>('missing')), { code: 'IBP_ERR_TM_BLOCK', message: /structure block missing: is not on the bus/ });
  const wrong = env();
  wrong.appendBlock(defineBlock<number>('account'), 3);
  t.throws(() => wrong.getBlock(ACC), { code: 'IBP_ERR_TM_BLOCK', message: /another shape/ }, 'a guard refuses another version of a block');
  t.equal(te.appendGetBlock(defineBlock<number[]>('list'), () => [1]).length, 1, 'appendGet creates once');
});

t.test('response code and description setters reach the response message', async (t) => {
  const rsp = { code: -1, desc: '' };
  const te = new TransEnv({ transCode: 'T', log: logger(), onResponse: (code, desc) => Object.assign(rsp, { code, desc }) });
  t.equal(te.responseSet, false);
  executeFuncArray(te, funcArray('r', [FUNC('refuse', (e) => { e.setResponse(1004, 'insufficient funds'); return 1004; })]));
  t.same(rsp, { code: 1004, desc: 'insufficient funds' });
  t.equal(te.responseCode, 1004);
  t.equal(te.responseSet, true);
  t.throws(() => te.dbAs(), { code: 'IBP_ERR_TM_BLOCK', message: /without a database/ });
});

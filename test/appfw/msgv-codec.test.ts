/**
 * Declared messages, fixed cases: the .dsc reader (every type, INCLUDE, DEFAULT, H lines, MESSAGE,
 * ARRAY, errors with file and line), the TS codec (defaults, exact NUMERIC and INT 8, byte limits,
 * typed errors naming the field, XML), the generated TS module (type-checked by tsc and run, its
 * client stub typed), and the C runtime on malformed and hostile input under ASan/UBSan.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { parseDsc, readDscFile } from '../../lib/appfw/msgv/dsc.js';
import { messageCodec } from '../../lib/appfw/msgv/codec.js';
import { decimalToScaled, scaledToDecimal } from '../../lib/appfw/msgv/scalar.js';
import { generateMessages } from '../../lib/appfw/msgv/generate.js';
import { isIbpError } from '../../lib/errors.js';
import { buildRoundTrip, runRoundTrip } from './helpers/c-roundtrip.js';
import { ROOT } from '../helpers/procs.js';

const FIX = path.join(ROOT, 'test', 'fixtures', 'appfw');
type Rec = Record<string, any>;

t.test('the .dsc reader: every type, INCLUDE in place, DEFAULT, H, MESSAGE, ARRAY', async (t) => {
  const mf = readDscFile(path.join(FIX, 'all_types.dsc'));
  t.equal(mf.messages.length, 1);
  const m = mf.messages[0]!;
  t.equal(m.messageName, 'AllTypes');
  t.equal(m.desc, 'every type');
  t.same(m.fields.map((f) => f.name), ['n1', 'n2', 'n4', 'n8', 'u1', 'u2', 'u4', 'u8', 'f4', 'f8', 'ch', 'uch', 's8', 'b1', 'amount', 'rate', 'ResponseHeader', 'items']);
  const items = m.fields.find((f) => f.name === 'items');
  t.match(items, { kind: 'struct', arraySize: 3 });
  t.same(mf.headerLines, ['#define RESPONSE_CODE_OK 0']);
  const init = messageCodec<Rec>(m).init();
  t.same(init, {
    n1: 0, n2: 0, n4: -7, n8: 0n, u1: 0, u2: 0, u4: 0, u8: 18446744073709551615n, f4: 0, f8: 2.5, ch: 'Y', uch: 0, s8: 'a b', b1: true,
    amount: '12.50', rate: '0.000', ResponseHeader: { response_code: 0, response_desc: 'OK' }, items: [],
  }, 'DEFAULTs (and zero values) fill a new message');
});

t.test('the .dsc reader refuses bad declarations naming file and line', async (t) => {
  const cases: [string, RegExp][] = [
    ['STRUCT a\n{\n\tINT 3 x\n}\n', /:3: INT 3 is not supported/],
    ['STRUCT a\n{\n\tNUMERIC 4 x\n}\n', /:3: NUMERIC needs precision,scale/],
    ['STRUCT a\n{\n\tNUMERIC 4,5 x\n}\n', /scale <= precision/],
    ['STRUCT a\n{\n\tSTRING 8 x\n\tINT 4 x\n}\n', /:4: field x declared twice/],
    ['STRUCT a\n{\n\tSTRING 8 int\n}\n', /reserved word/],
    ['STRUCT a\n{\n\tINT 1 x DEFAULT 300\n}\n', /:3: DEFAULT 300 of x: expected INT 1/],
    ['STRUCT a\n{\n\tSTRING 2 x DEFAULT "abc"\n}\n', /DEFAULT abc of x/],
    ['STRUCT a\n{\n\tINT 4 x\n', /not closed/],
    ['STRUCT a ARRAY 2\n{\n\tINT 4 x\n}\n', /cannot be an ARRAY/],
    ['STRUCT a\n{\n\tDATE 8 x\n}\n', /unknown field type DATE/],
    ['STRUCT a\n{\n\tSTRUCT b ARRAY 0\n\t{\n\t\tINT 4 x\n\t}\n}\n', /ARRAY size 0/],
    ['STRUCT a\n{\n}\n', /has no fields/],
    ['INT 4 x\n', /expected STRUCT/],
    ['STRUCT a\n{\n\tSTRING 8 x DEFAULT "unterminated\n}\n', /unterminated " quote/],
    ['STRUCT a\n{\n\tINCLUDE nowhere.dsc\n}\n', /cannot read/],
  ];
  for (const [text, re] of cases) {
    try {
      parseDsc(text, '/x/bad.dsc');
      t.fail(`accepted: ${text}`);
    } catch (e) {
      t.ok(isIbpError(e, 'IBP_ERR_MSG_DECL'), `IBP_ERR_MSG_DECL for ${JSON.stringify(text)}`);
      t.match((e as Error).message, re);
      t.match((e as Error).message, /^\/x\/bad\.dsc:\d+:|cannot read/);
    }
  }
});

t.test('the TS codec: exact decimals and 8-byte integers, byte limits, typed errors naming the field', async (t) => {
  const codec = messageCodec<Rec>(readDscFile(path.join(FIX, 'all_types.dsc')).messages[0]!);
  const v = { ...codec.init(), amount: '99999999999999.99', n8: -9223372036854775808n, u8: 18446744073709551615n, s8: '中中', rate: '-0.001', items: [{ tag: 'ab', qty: '1234.5' }] };
  const json = codec.packJson(v);
  t.match(json, /"amount":"99999999999999.99"/, 'NUMERIC travels as a string, all 16 digits kept');
  t.match(json, /"n8":"-9223372036854775808"/, 'INT 8 travels as a string');
  t.same(codec.unpackJson(json), codec.check(v));
  t.equal(codec.unpackJson('{"amount":"0.1"}').amount, '0.10');
  t.equal(codec.unpackJson('{"amount":"-0"}').amount, '0.00', 'no negative zero');
  t.equal(codec.unpackJson('{"amount":"7.500"}').amount, '7.50', 'trailing zeros beyond the scale are not rounding');
  t.equal(decimalToScaled('-12.34', 2), -1234n);
  t.equal(scaledToDecimal(5n, 3), '0.005');
  t.equal(codec.unpackJson('{"n8":42}').n8, 42n, 'a safe JSON number is accepted for INT 8');
  const refusals: [string, string, RegExp][] = [
    ['{"amount":"1.005"}', 'amount', /more than 2 fraction digits/],
    ['{"amount":"123456789012345.00"}', 'amount', /more than 14 integer digits/],
    ['{"amount":1.5}', 'amount', /NUMERIC 16,2.*got number 1.5/],
    ['{"s8":"中中中"}', 's8', /at most 8 UTF-8 bytes.*got 9 bytes/],
    ['{"s8":"a\\u0000"}', 's8', /NUL/],
    ['{"n1":128}', 'n1', /out of range/],
    ['{"u1":-1}', 'u1', /out of range/],
    ['{"n8":9007199254740993}', 'n8', /INT 8/],
    ['{"ch":"ab"}', 'ch', /CHAR 1/],
    ['{"b1":"yes"}', 'b1', /BOOL/],
    ['{"f8":null}', 'f8', /FLOAT 8.*null/],
    ['{"items":[{"tag":"abcde"}]}', 'items[0].tag', /STRING 4/],
    ['{"items":[{},{},{},{}]}', 'items', /at most 3 elements/],
    ['{"items":{}}', 'items', /ARRAY 3/],
    ['{"ResponseHeader":{"response_code":"x"}}', 'ResponseHeader.response_code', /INT 4/],
  ];
  for (const [body, field, re] of refusals) {
    try {
      codec.unpackJson(body);
      t.fail(`accepted ${body}`);
    } catch (e) {
      t.ok(isIbpError(e, 'IBP_ERR_MSG_FIELD'), `${body}: IBP_ERR_MSG_FIELD`);
      t.equal((e as any).params.field, field, `${body}: names ${field}`);
      t.match((e as Error).message, re);
    }
  }
  t.throws(() => codec.unpackJson('{"nope":1}'), { code: 'IBP_ERR_MSG_UNKNOWN_FIELD', message: /has no field nope/ });
  t.throws(() => codec.unpackJson('{"items":[{"zz":1}]}'), { code: 'IBP_ERR_MSG_UNKNOWN_FIELD', message: /items\[0\]\.zz/ });
  t.throws(() => codec.unpackJson('{'), { code: 'IBP_ERR_MSG_SYNTAX' });
  t.throws(() => codec.unpackJson('[]'), { code: 'IBP_ERR_MSG_FIELD' });
  t.throws(() => codec.packJson({ ...codec.init(), amount: 1.5 } as Rec), { code: 'IBP_ERR_MSG_FIELD', message: /amount/ }, 'pack checks too');
  t.throws(() => codec.packJson({ ...codec.init(), n8: 1 } as Rec), { code: 'IBP_ERR_MSG_FIELD' }, 'a TS value of INT 8 must be a bigint');
});

t.test('the TS codec in XML: root <MESSAGE>, repeated elements for arrays, one element still an array', async (t) => {
  const codec = messageCodec<Rec>(readDscFile(path.join(FIX, 'all_types.dsc')).messages[0]!);
  const v = { ...codec.init(), s8: '<&>"\'', items: [{ tag: 'x', qty: '2.0' }] };
  const xml = codec.packXml(v);
  t.match(xml, /^<AllTypes>.*<items><tag>x<\/tag><qty>2.0<\/qty><\/items><\/AllTypes>$/);
  t.same(codec.unpackXml(xml), codec.check(v));
  t.same(codec.unpackXml('<AllTypes><n4>5</n4><b1>false</b1></AllTypes>'), { ...codec.init(), n4: 5, b1: false }, 'missing elements keep their DEFAULT');
  t.throws(() => codec.unpackXml('<Other/>'), { code: 'IBP_ERR_MSG_SYNTAX', message: /<AllTypes>/ });
  t.throws(() => codec.unpackXml('<AllTypes><n1>x</n1></AllTypes>'), { code: 'IBP_ERR_MSG_FIELD', message: /field n1/ });
  t.throws(() => codec.packXml({ ...codec.init(), s8: 'a\u0001' }), { code: 'IBP_ERR_MSG_FIELD', message: /control character/ });
  // found by the property test: a struct (or array element) whose only content is empty arrays is an empty element
  const nested = messageCodec<Rec>(parseDsc('STRUCT m\n{\n\tSTRUCT s\n\t{\n\t\tSTRUCT s ARRAY 2\n\t\t{\n\t\t\tUINT 4 f\n\t\t}\n\t}\n\tSTRUCT a ARRAY 3\n\t{\n\t\tSTRUCT b ARRAY 2\n\t\t{\n\t\t\tINT 1 x\n\t\t}\n\t}\n}\n').messages[0]!);
  const empty = { s: { s: [] }, a: [{ b: [] }, { b: [{ x: 1 }] }] };
  t.equal(nested.packXml(empty), '<m><s></s><a></a><a><b><x>1</x></b></a></m>');
  t.same(nested.unpackXml(nested.packXml(empty)), empty);
});

t.test('generated TS: tsc type-checks it strictly, it runs, its client stub is typed', async (t) => {
  const dir = fs.realpathSync(t.testdir({ 'tsconfig.json': JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')], noEmit: false, outDir: 'out' }, include: ['*.ts'] }) }));
  const files = generateMessages(path.join(FIX, 'all_types.dsc'), { lang: 'ts', out: dir, runtimeBase: path.join(ROOT, 'lib', 'appfw', 'msgv'), ibacModule: path.join(ROOT, 'ibac', 'index.js'), calls: [] });
  t.same(files.map((f) => path.basename(f)), ['all_types.dsc.ts']);
  fs.writeFileSync(path.join(dir, 'use.ts'), `import { all_types } from './all_types.dsc.js';
const v: all_types = all_types.init();
v.amount = '1.25';
v.items.push({ tag: 'ok', qty: '3.0' });
// @ts-expect-error NUMERIC is a decimal string, not a number
v.rate = 1.5;
// @ts-expect-error INT 8 is a bigint
v.n8 = 1;
export const out: string = all_types.packJson(v);
`);
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir, '--noEmit'], { encoding: 'utf8', timeout: 120_000 });
  t.equal(tsc.status, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
  const mod = await import(pathToFileURL(path.join(dir, 'all_types.dsc.ts')).href);
  t.equal(mod.all_types.unpackJson('{"rate":"0.5"}').rate, '0.500', 'the generated codec works');
  t.equal(mod.all_types.decl.messageName, 'AllTypes');
  const again = generateMessages(path.join(FIX, 'all_types.dsc'), { lang: 'ts', out: dir, runtimeBase: path.join(ROOT, 'lib', 'appfw', 'msgv'), ibacModule: path.join(ROOT, 'ibac', 'index.js') });
  t.same(again, files, 'regenerating writes the same file');
  const demo = path.join(ROOT, 'lib', 'appfw', 'demo');
  const fresh = generateMessages(path.join(demo, 'demo_transfer.dsc'), { lang: 'ts', out: path.join(dir, 'demo'), runtimeBase: '../msgv', ibacModule: '../../../ibac/index.js', calls: [{ app: 'demo_transfer', request: 'transfer_req', response: 'transfer_rsp' }] });
  t.equal(fs.readFileSync(fresh[0]!, 'utf8'), fs.readFileSync(path.join(demo, 'demo_transfer.dsc.ts'), 'utf8'), 'the demo\'s committed messages module is what ibpgen generates from its .dsc');
});

t.test('the C runtime on hostile input, under ASan and UBSan', async (t) => {
  const dir = t.testdir();
  const mf = readDscFile(path.join(FIX, 'all_types.dsc'));
  const probe = spawnSync('gcc', ['-fsanitize=address,undefined', '-x', 'c', '-o', path.join(dir, 'probe'), '-'], { input: 'int main(void){return 0;}', encoding: 'utf8' });
  const san = probe.status === 0 ? ['-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : [];
  if (!san.length) t.comment('gcc has no sanitizers here: plain build');
  const exe = buildRoundTrip(mf, path.join(dir, 'c'), 'all_types.dsc', san);
  const cases: [string, RegExp][] = [
    ['{}', /^\{"n1":0,.*"n4":-7,.*"u8":"18446744073709551615",.*"amount":"12.50",.*"items":\[\]\}$/],
    ['{"amount":"-000012.5","rate":"0.1"}', /"amount":"-12.50",.*"rate":"0.100"/],
    ['{"s8":"\\ud83d\\ude00\\u00e9"}', /"s8":"😀é"/],
    ['{"n8":"-9223372036854775808","u8":"0"}', /"n8":"-9223372036854775808"/],
    ['{"items":[{"tag":"a"},{"qty":"9999.9"}]}', /"items":\[\{"tag":"a","qty":"1.0"\},\{"tag":"","qty":"9999.9"\}\]/],
    ['{"amount":"1.005"}', /^ERR -2 field amount: expected NUMERIC 16,2/],
    ['{"s8":"123456789"}', /^ERR -2 field s8: .*9 bytes/],
    ['{"s8":"\\ud83d"}', /^ERR -2 field s8/],
    ['{"s8":"a\\u0000b"}', /^ERR -2 field s8/],
    ['{"items":[{},{},{},{}]}', /^ERR -2 field items: expected at most 3/],
    ['{"items":[{"zz":1}]}', /^ERR -3 no field items\[0\]\.zz/],
    ['{"n8":9007199254740993}', /^ERR -2 field n8/],
    ['{"n1":-129}', /^ERR -2 field n1/],
    ['{"u8":"18446744073709551616"}', /^ERR -2 field u8/],
    ['{"f4":1e39}', /^ERR -2 field f4/],
    ['{"b1":null}', /^ERR -2 field b1/],
    ['{"n4":1} x', /^ERR -1 .*data after/],
    ['{"n4":', /^ERR -1/],
    ['{"s8":"abc', /^ERR -1 .*unterminated/],
    ['{"s8":"\\q"}', /^ERR -1 .*bad escape/],
    ['{"s8":"\\u12"}', /^ERR -1/],
    ['[1,2]', /^ERR -1 .*expected an object/],
    [`{"${'k'.repeat(400)}":1}`, /^ERR -3/],
    [`{"s8":"${'x'.repeat(100000)}"}`, /^ERR -2 field s8: .*100000 bytes/],
    [`{"ResponseHeader":${'['.repeat(5000)}`, /^ERR -2 field ResponseHeader: expected an object/],
    ['{"n4":01}', /^ERR -2|^ERR -1/],
  ];
  const out = runRoundTrip(exe, cases.map(([json]) => `all_types ${json}`));
  cases.forEach(([json, re], i) => t.match(out[i], re, json.length > 60 ? `${json.slice(0, 60)}…` : json));
  // what C packs, TS reads back as the same message
  const codec = messageCodec<Rec>(mf.messages[0]!);
  t.same(codec.unpackJson(out[1]!), codec.unpackJson('{"amount":"-12.5","rate":"0.1"}'));
});

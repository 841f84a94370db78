/**
 * JS apps in the app cache, in process (issue 15): an ES module package (`*.mjs`) loads through
 * the same private copies and LRU as a .so; lifecycle (init on load, clean on unload); the
 * context; a throw or a non-integer result is IBP_ERR_APP_THREW; an async main is refused on the
 * synchronous worker path; a changed file is a fresh module instance on the next get; send-ahead
 * reaches the worker's hook at once; kv/config from the space. The C API gained the same
 * (kv_get, config_get, log, rsp_send_ahead): checked with test/fixtures/apps/ibp_test_api.c.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { AppCache, type AppSpaceAccess } from '../../ibas/app-cache.js';
import { builtApp } from '../../lib/native/built-files.js';
import { createLogger } from '../../lib/log.js';
import { RC, resultOf } from '../../lib/protocol/result-codes.js';

interface Home { root: string; so: string; file: string; logFile: string }

function makeHome(t: Tap.Test, bins: string[]): Home {
  const root = t.testdir({ so: {}, file: {}, log: {} });
  const home = { root, so: path.join(root, 'so'), file: path.join(root, 'file'), logFile: path.join(root, 'log', 'worker.log') };
  for (const b of bins) fs.copyFileSync(builtApp(b), path.join(home.so, b));
  return home;
}

const space: AppSpaceAccess = {
  generation: () => 7,
  kvs: () => [['colour', 'blue'], ['size', 'XL']],
  kv: (k) => (k === 'colour' ? 'blue' : k === 'size' ? 'XL' : undefined),
  appConfig: (app) => [['app', app], ['desc', `the ${app} app`], ['timeout', '5']],
};

function makeCache(t: Tap.Test, home: Home): AppCache {
  const log = createLogger({ name: 'ibas', file: home.logFile, level: 'debug' });
  const cache = new AppCache({ max: 4, soDir: home.so, log, thisNode: 'N1', workerIndex: 2, space, watch: false });
  t.teardown(() => cache.close());
  return cache;
}

const FIX = { app: 'fix', bin: 'ibp_ts_fixture.mjs' };
const call = (cache: AppCache, req: string, ctx = {}) => cache.get(FIX).call(ctx, Buffer.from(req));

t.test('a JS app: load, init once, echo, context, result codes', async (t) => {
  const home = makeHome(t, ['ibp_ts_fixture.mjs', 'ibp_ts_echo.mjs']);
  const cache = makeCache(t, home);
  const a = cache.get(FIX);
  t.ok(a.loaded && a.isJs, 'loaded as a JS app');
  t.equal(call(cache, 'hello').response.toString(), 'hello');
  const echo = cache.get({ app: 'echo', bin: 'ibp_ts_echo.mjs' }).call({}, Buffer.from('x'.repeat(100_000)));
  t.equal(echo.response.length, 100_000, 'the example echo answers 100 kB');
  const ctx = JSON.parse(call(cache, 'ctx', { clientNode: 'C9', clientIp: '127.0.0.9', journal: 'J42', timeoutMs: 1000, timeout2Ms: 1500 }).response.toString());
  t.match(ctx, { node: 'N1', app: 'fix', clientNode: 'C9', clientIp: '127.0.0.9', journal: 'J42', workerIndex: 2, timeoutMs: 1000, timeout2Ms: 1500, phase: 2, desc: 'the fix app', pid: process.pid, inits: 1 });
  t.equal(call(cache, 'kv:colour').response.toString(), 'blue', 'ctx.kv reads the space');
  t.equal(call(cache, 'kv:nope').rc, 1);
  const rc = call(cache, 'rc:7');
  t.equal(rc.rc, 7, 'an integer result is the app rc');
  t.equal(rc.response.toString(), 'rc');
  t.equal(cache.stats().loads, 2);
});

t.test('throw, a bad result and an async main are typed errors; the app stays usable', async (t) => {
  const home = makeHome(t, ['ibp_ts_fixture.mjs']);
  const cache = makeCache(t, home);
  for (const [req, detail] of [['throw', /asked to throw/], ['badrc', /not an integer/], ['async', /returned a Promise but is not declared async/]] as const) {
    const e = t.throws(() => call(cache, req), { code: 'IBP_ERR_APP_THREW' }) as unknown as Error;
    t.match(e.message, detail, req);
    t.equal(resultOf(e), RC.APP_THREW, `${req}: RC.APP_THREW on the wire`);
  }
  t.equal(call(cache, 'still').response.toString(), 'still', 'the next call works');
  t.match(fs.readFileSync(home.logFile, 'utf8'), /app threw in main.*stack\[Error: the fixture was asked to throw/, 'the stack is in the app log');
});

t.test('send-ahead: the hook gets the early response at once, later writes are refused', async (t) => {
  const home = makeHome(t, ['ibp_ts_fixture.mjs', 'ibp_test_api.so']);
  const cache = makeCache(t, home);
  const sent: string[] = [];
  const r = call(cache, 'ahead', { onSendAhead: (b: Buffer) => sent.push(b.toString()) });
  t.same(sent, ['early']);
  t.equal(r.sentAhead, true);
  t.equal(r.response.toString(), 'early');
  // the C twin
  const c = cache.get({ app: 'capi', bin: 'ibp_test_api.so' });
  const csent: string[] = [];
  const cr = c.call({ onSendAhead: (b) => csent.push(b.toString()) }, Buffer.from('ahead'));
  t.equal(cr.rc, 0, 'C: rsp_append after rsp_send_ahead is refused, a second send-ahead too');
  t.same(csent, ['early']);
  t.equal(cr.sentAhead, true);
});

t.test('the C API: kv_get, config_get and the app log', async (t) => {
  const home = makeHome(t, ['ibp_test_api.so']);
  const cache = makeCache(t, home);
  const c = (req: string) => cache.get({ app: 'capi', bin: 'ibp_test_api.so' }).call({}, Buffer.from(req));
  t.equal(c('kv:size').response.toString(), 'XL');
  t.equal(c('kv:colour').response.toString(), 'blue');
  t.equal(c('kv:none').rc, 1);
  t.equal(c('config:desc').response.toString(), 'the capi app');
  t.equal(c('config:nope').rc, 1);
  t.equal(c('log').response.toString(), 'logged');
  const log = fs.readFileSync(home.logFile, 'utf8').split('\n').filter((l) => l.includes('"source":"app"')).map((l) => JSON.parse(l) as { level: string; msg: string; app: string });
  t.same(log.map((l) => [l.level, l.msg, l.app]), [
    ['debug', 'app log , c debug line', 'capi'], ['info', 'app log , c info line 42', 'capi'],
    ['warn', 'app log , c warn line', 'capi'], ['error', 'app log , c error line', 'capi'],
  ]);
});

t.test('hot update: a changed .mjs is a fresh module instance; clean runs for the old one', async (t) => {
  const home = makeHome(t, []);
  const cleanLog = path.join(home.root, 'clean.log');
  process.env.IBP_TS_FIXTURE_CLEAN_LOG = cleanLog;
  t.teardown(() => delete process.env.IBP_TS_FIXTURE_CLEAN_LOG);
  const file = path.join(home.so, 'ver.mjs');
  const src = (v: number) => `import fs from 'node:fs';\nlet n = 0;\nexport function main(ctx) { n++; ctx.write('v${v} call ' + n); }\nexport function clean(ctx) { fs.appendFileSync(process.env.IBP_TS_FIXTURE_CLEAN_LOG, 'clean v${v}\\n'); }\n`;
  fs.writeFileSync(file, src(1));
  const cache = makeCache(t, home);
  const ref = { app: 'ver', bin: 'ver.mjs' };
  t.equal(cache.get(ref).call({}, Buffer.alloc(0)).response.toString(), 'v1 call 1');
  t.equal(cache.get(ref).call({}, Buffer.alloc(0)).response.toString(), 'v1 call 2');
  fs.writeFileSync(file + '.tmp', src(2));
  fs.renameSync(file + '.tmp', file);
  t.equal(cache.get(ref).call({}, Buffer.alloc(0)).response.toString(), 'v2 call 1', 'the next call runs the new version, with fresh module state');
  t.equal(fs.readFileSync(cleanLog, 'utf8'), 'clean v1\n', 'clean ran for v1');
  fs.writeFileSync(file + '.tmp', src(1));
  fs.renameSync(file + '.tmp', file);
  t.equal(cache.get(ref).call({}, Buffer.alloc(0)).response.toString(), 'v1 call 1', 'back to v1 source: still a fresh instance (unique private path)');
  t.same(fs.readdirSync(cache.privateDir).filter((n) => n !== 'node_modules'), [], 'no private copy left behind (node_modules/ibp-ts is the framework link)');
});

t.test('refused packages: no main, top-level await, syntax error, wrong ABI', async (t) => {
  const home = makeHome(t, []);
  const cache = makeCache(t, home);
  const cases: [string, string, RegExp][] = [
    ['nomain.mjs', 'export const x = 1;\n', /does not export a function main/],
    ['tla.mjs', 'await Promise.resolve();\nexport function main() {}\n', /top-level await/],
    ['syntax.mjs', 'export function main( {\n', /does not load as an ES module/],
    ['abi.mjs', 'export const abiVersion = 99;\nexport function main() {}\n', /app ABI 99/],
    ['initfail.mjs', 'export function init() { return 3; }\nexport function main() {}\n', /init returned 3/],
  ];
  for (const [bin, text, why] of cases) {
    fs.writeFileSync(path.join(home.so, bin), text);
    const e = t.throws(() => cache.get({ app: 'x', bin }), { code: 'IBP_ERR_APP_LOAD' }) as unknown as Error;
    t.match(e.message, why, bin);
  }
});

t.test('an async main runs in an app thread; the synchronous caller gets its answer', async (t) => {
  const home = makeHome(t, ['ibp_ts_async.mjs', 'ibp_ts_fixture.mjs']);
  const cache = makeCache(t, home);
  const A = { app: 'asy', bin: 'ibp_ts_async.mjs' };
  const a = (req: string, ctx = {}) => cache.get(A).call(ctx, Buffer.from(req));
  t.equal(a('sleep:30').response.toString(), 'slept 30', 'awaited a timer');
  t.equal(a('x').response.toString(), 'x#2', 'module state lives in the thread');
  t.equal(a('kv:size').response.toString(), 'XL', 'kv reaches the thread');
  const e = t.throws(() => a('throw'), { code: 'IBP_ERR_APP_THREW' }) as unknown as Error;
  t.match(e.message, /rejected after an await/);
  const sent: string[] = [];
  const r = a('ahead', { onSendAhead: (b: Buffer) => sent.push(b.toString()) });
  t.same([r.rc, r.response.toString(), r.sentAhead, sent], [0, 'early', true, ['early']], 'send-ahead from the thread, later writes refused');
  t.match(fs.readFileSync(home.logFile, 'utf8'), /post-processing after send-ahead/, 'the thread\'s log lines reach the app log');
  const plain = t.throws(() => call(cache, 'async'), { code: 'IBP_ERR_APP_THREW' }) as unknown as Error;
  t.match(plain.message, /declare it `async function`/, 'a non-async function returning a Promise is refused with the fix');
});

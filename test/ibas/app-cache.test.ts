/**
 * The app cache in process, with the real built apps (scripts/build-apps.sh → build/apps/):
 * load and call, the context crossing the ABI, LRU eviction and the lifecycle symbols, response
 * growth beyond the host buffer, attached files both ways, app result codes, two-phase commit
 * keeping a prepared app loaded, and bad input refused with clear errors.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { AppCache } from '../../ibas/app-cache.js';
import { APP_ABI_VERSION } from '../../ibas/app-abi.js';
import { builtApp } from '../../lib/native/built-files.js';
import { createLogger } from '../../lib/log.js';

interface Home { root: string; so: string; file: string; logFile: string }

function makeHome(t: Tap.Test, apps: string[]): Home {
  const root = t.testdir({ so: {}, file: {}, log: {} });
  const home = { root, so: path.join(root, 'so'), file: path.join(root, 'file'), logFile: path.join(root, 'log', 'worker.log') };
  for (const a of apps) fs.copyFileSync(builtApp(a), path.join(home.so, `${a}.so`));
  return home;
}

function makeCache(t: Tap.Test, home: Home, max: number, extra: Partial<ConstructorParameters<typeof AppCache>[0]> = {}): AppCache {
  const log = createLogger({ name: 'ibas', file: home.logFile, level: 'debug' });
  const cache = new AppCache({ max, soDir: home.so, log, thisNode: 'N1', workerIndex: 3, ...extra });
  t.teardown(() => cache.close());
  return cache;
}

const ref = (app: string) => ({ app, bin: `${app}.so` });
const text = (b: Buffer) => b.toString('utf8');

t.test('echo: load once, call many times, hits after the first get', async (t) => {
  const home = makeHome(t, ['ibp_test_echo']);
  const cache = makeCache(t, home, 4);
  const a = cache.get(ref('ibp_test_echo'));
  t.ok(a.loaded);
  t.equal(a.fromUpdating, false);
  for (let i = 0; i < 200; i++) {
    const req = Buffer.from(`hello ${i} ${'z'.repeat(i)}`);
    const r = cache.get(ref('ibp_test_echo')).call({ journal: `J${i}` }, req);
    t.equal(r.rc, 0);
    if (!r.response.equals(req)) t.fail(`echo ${i} differs`);
    t.same(r.files, []);
  }
  t.equal(cache.get(ref('ibp_test_echo')), a, 'the same handle while the file is unchanged');
  const st = cache.stats();
  t.equal(st.loads, 1);
  t.equal(st.misses, 1);
  t.ok(st.hits >= 201);
  const empty = a.call({}, Buffer.alloc(0));
  t.equal(empty.response.length, 0, 'empty request, empty answer');
  const bin = Buffer.from([0, 1, 2, 255, 0, 10, 13]);
  t.ok(a.call({}, bin).response.equals(bin), 'binary bytes cross unchanged');
});

t.test('every context field crosses the ABI', async (t) => {
  const home = makeHome(t, ['ibp_test_ctx']);
  fs.writeFileSync(path.join(home.file, 'a.txt'), 'A');
  fs.writeFileSync(path.join(home.file, 'b c.bin'), 'B');
  const cache = makeCache(t, home, 2);
  const r = cache.get(ref('ibp_test_ctx')).call(
    { clientNode: 'CLIENT-9', clientIp: '127.1.2.3', clientPort: 40123, journal: '20261121-000042', timeoutMs: 1500, timeout2Ms: 2250 },
    Buffer.from('payload'),
    ['a.txt', 'b c.bin'],
  );
  t.equal(r.rc, 0);
  const fields = Object.fromEntries(text(r.response).split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  t.same(fields, {
    abi: String(APP_ABI_VERSION),
    ctx_size: fields.ctx_size,
    phase: '2',
    this_node: 'N1',
    app: 'ibp_test_ctx',
    client_node: 'CLIENT-9',
    client_ip: '127.1.2.3',
    client_port: '40123',
    worker_index: '3',
    journal: '20261121-000042',
    timeout_ms: '1500',
    timeout2_ms: '2250',
    file_dir: home.file,
    req_len: '7',
    req_files: 'a.txt,b c.bin',
    req: 'payload',
  });
  t.ok(Number(fields.ctx_size) > 100, 'ctx_size is the host struct size');
  const over = cache.get(ref('ibp_test_ctx')).call({ app: 'OTHER_CODE', thisNode: 'N2', workerIndex: 0 }, Buffer.from('x'));
  t.match(text(over.response), /this_node=N2\napp=OTHER_CODE\n.*worker_index=0\n/s, 'per-call values override the cache defaults');
});

t.test('LRU: the least recently used app is unloaded at the limit, soinit/soclean run', async (t) => {
  const home = makeHome(t, ['ibp_test_echo', 'ibp_test_ctx', 'ibp_test_life']);
  const cache = makeCache(t, home, 2);
  const lifeLog = path.join(home.file, 'ibp_test_life.log');
  t.equal(text(cache.get(ref('ibp_test_life')).call({}, Buffer.from('')).response), 'life:1');
  t.equal(text(cache.get(ref('ibp_test_life')).call({}, Buffer.from('')).response), 'life:2');
  t.equal(fs.readFileSync(lifeLog, 'utf8'), `init ${process.pid}\n`, 'soinit ran once');
  cache.get(ref('ibp_test_echo'));
  t.ok(cache.has('ibp_test_life.so') && cache.has('ibp_test_echo.so'));
  cache.get(ref('ibp_test_ctx')); // third app: life is the least recently used
  t.notOk(cache.has('ibp_test_life.so'), 'life evicted');
  t.ok(cache.has('ibp_test_echo.so') && cache.has('ibp_test_ctx.so'));
  t.equal(cache.stats().size, 2);
  t.equal(cache.stats().unloads, 1);
  t.equal(fs.readFileSync(lifeLog, 'utf8'), `init ${process.pid}\nclean ${process.pid}\n`, 'soclean ran at eviction');
  t.equal(text(cache.get(ref('ibp_test_life')).call({}, Buffer.from('')).response), 'life:1', 'reloaded: static state starts over');
  t.notOk(cache.has('ibp_test_echo.so'), 'echo was then the least recently used');
  await cache.close();
  t.equal(fs.readFileSync(lifeLog, 'utf8').split('\n').filter((l) => l.startsWith('clean')).length, 2, 'close runs soclean of what is loaded');
  t.notOk(fs.existsSync(cache.privateDir), 'close removes the private copy folder');
  t.throws(() => cache.get(ref('ibp_test_echo')), { code: 'IBP_ERR_APP_UNLOADED' });
  const lines = fs.readFileSync(home.logFile, 'utf8');
  t.match(lines, /app loaded , bin\[ibp_test_life\.so\]/);
  t.match(lines, /app unloaded , bin\[ibp_test_life\.so\] reason\[least recently used\]/);
});

t.test('responses larger than the host buffer grow in C and come back whole', async (t) => {
  const home = makeHome(t, ['ibp_test_life', 'ibp_test_echo']);
  const cache = makeCache(t, home, 2, { responseBufferSize: 4096 });
  for (const n of [4095, 4096, 4097, 300_000, 5_000_000]) {
    const r = cache.get(ref('ibp_test_life')).call({}, Buffer.from(`big:${n}`));
    t.equal(r.response.length, n, `${n} bytes`);
    t.equal(r.response.indexOf('y'), -1);
    t.equal(r.response[0], 0x78);
    t.equal(r.response[n - 1], 0x78);
  }
  const req = Buffer.alloc(1_000_000, 7);
  t.ok(cache.get(ref('ibp_test_echo')).call({}, req).response.equals(req), 'a 1 MB echo (request in place, response grown)');
  t.equal(text(cache.get(ref('ibp_test_echo')).call({}, Buffer.from('small')).response), 'small', 'back to the in-place buffer');
});

t.test('file echo: 4 request files in, 4 response files out', async (t) => {
  const home = makeHome(t, ['ibp_test_file']);
  const cache = makeCache(t, home, 2);
  const names = ['f1.txt', 'f2.bin', 'empty', 'big.dat'];
  const contents = [Buffer.from('one'), Buffer.from([0, 1, 2, 3, 255]), Buffer.alloc(0), Buffer.alloc(300_000, 0x41)];
  names.forEach((n, i) => fs.writeFileSync(path.join(home.file, n), contents[i]!));
  const r = cache.get(ref('ibp_test_file')).call({ journal: 'F1' }, Buffer.from('with files'), names);
  t.equal(r.rc, 0);
  t.equal(text(r.response), 'with files');
  t.same(r.files, names.map((n) => `${n}.echo`));
  names.forEach((n, i) => t.ok(fs.readFileSync(path.join(home.file, `${n}.echo`)).equals(contents[i]!), `${n}.echo has the content`));
  const none = cache.get(ref('ibp_test_file')).call({}, Buffer.from('no files'));
  t.same(none.files, [], 'no files: none back, nothing left from the last call');
  const missing = cache.get(ref('ibp_test_file')).call({}, Buffer.from('x'), ['not-there']);
  t.equal(missing.rc, 2, 'the app reports an unreadable request file with its own rc');
});

t.test('attached file names are checked before the app sees them', async (t) => {
  const home = makeHome(t, ['ibp_test_file']);
  const cache = makeCache(t, home, 2);
  const app = cache.get(ref('ibp_test_file'));
  for (const bad of ['../etc/passwd', 'a/b', '', '..', 'x\ny', 'n'.repeat(256)]) {
    t.throws(() => app.call({}, Buffer.from('x'), [bad]), { code: 'IBP_ERR_APP_FILE' }, `refused: ${JSON.stringify(bad.slice(0, 20))}`);
  }
  t.throws(() => app.call({}, Buffer.from('x'), Array.from({ length: 65 }, (_, i) => `f${i}`)), { code: 'IBP_ERR_APP_FILE' }, 'more than 64 files');
  t.equal(text(app.call({}, Buffer.from('still fine')).response), 'still fine');
});

t.test('response file names are checked in C (rsp_file_add) and must exist', async (t) => {
  const home = makeHome(t, ['ibp_test_rspfile']);
  const cache = makeCache(t, home, 2);
  const app = cache.get(ref('ibp_test_rspfile'));
  const bad = ['../x', 'a/b', '', '.', '..', 'x..y', 'tab\there', 'n'.repeat(256)];
  const r = app.call({}, Buffer.from(['+good', ...bad, 'good'].join('\n')));
  t.equal(r.response.toString(), ['ok', ...bad.map(() => 'refused'), 'refused'].join('\n') + '\n', 'bad names and a duplicate refused');
  t.same(r.files, ['good']);
  const many = Array.from({ length: 65 }, (_, i) => `+f${i}`).join('\n');
  const m = app.call({}, Buffer.from(many));
  t.equal(m.files.length, 64, 'at most 64 response files');
  t.match(m.response.toString(), /(ok\n){64}refused\n$/);
  t.equal(fs.readFileSync(path.join(home.file, 'f63'), 'utf8'), 'f63');
  t.throws(() => app.call({}, Buffer.from('never-created')), { code: 'IBP_ERR_APP_FILE', message: /never-created.*not a regular file/ });
  t.same(app.call({}, Buffer.from('')).files, [], 'the next call starts with no response files');
});

t.test('app result codes come back with the response', async (t) => {
  const home = makeHome(t, ['ibp_test_rc']);
  const cache = makeCache(t, home, 2);
  const app = cache.get(ref('ibp_test_rc'));
  t.same({ ...app.call({}, Buffer.from('7:no such account')), response: undefined }, { rc: 7, response: undefined, files: [] });
  t.equal(text(app.call({}, Buffer.from('7:no such account')).response), 'no such account');
  t.equal(app.call({}, Buffer.from('0:ok')).rc, 0);
  t.equal(app.call({}, Buffer.from('123456')).rc, 123456);
});

t.test('two-phase commit: prepare, commit or rollback; a prepared app stays loaded', async (t) => {
  const home = makeHome(t, ['ibp_test_2pc', 'ibp_test_echo']);
  const cache = makeCache(t, home, 1);
  const ledger = path.join(home.root, 'ledger');
  fs.mkdirSync(ledger);
  process.env.IBP_TEST_2PC_DIR = ledger; // setenv(3): the app's getenv sees it
  t.teardown(() => void delete process.env.IBP_TEST_2PC_DIR);
  const marker = (j: string, s: string) => path.join(ledger, `ibp_test_2pc.${j}.${s}`);

  const a = cache.get(ref('ibp_test_2pc'));
  t.ok(a.twoPhase);
  const p = a.call({ journal: 'T1' }, Buffer.from('debit 10'), [], { prepare: true });
  t.equal(p.rc, 0);
  t.equal(text(p.response), 'prepared:debit 10');
  t.equal(fs.readFileSync(marker('T1', 'prepared'), 'utf8'), 'debit 10');
  t.equal(a.pending, 1);

  cache.get(ref('ibp_test_echo')); // max 1: evicts the 2PC app, which must stay loaded
  t.notOk(cache.has('ibp_test_2pc.so'));
  t.ok(a.loaded, 'still loaded while a commit is pending');
  const c = a.commit({ journal: 'T1' });
  t.equal(c.rc, 0);
  t.equal(text(c.response), 'committed:T1');
  t.ok(fs.existsSync(marker('T1', 'committed')));
  t.notOk(a.loaded, 'unloaded once the decision is delivered');
  t.throws(() => a.call({}, Buffer.from('x')), { code: 'IBP_ERR_APP_UNLOADED' });

  const b = cache.get(ref('ibp_test_2pc'));
  t.equal(b.call({ journal: 'T2' }, Buffer.from('credit 5'), [], { prepare: true }).rc, 0);
  t.equal(text(b.rollback({ journal: 'T2' }).response), 'rolledback:T2');
  t.ok(fs.existsSync(marker('T2', 'rolledback')));
  t.notOk(fs.existsSync(marker('T2', 'committed')));
  t.ok(b.loaded, 'not evicted: stays cached after the decision');
  t.equal(b.call({ journal: 'T3' }, Buffer.from('fail'), [], { prepare: true }).rc, 7, 'a refused prepare');
  t.equal(b.pending, 0, 'a failed prepare pins nothing');

  const echo = cache.get(ref('ibp_test_echo'));
  t.throws(() => echo.call({}, Buffer.from('x'), [], { prepare: true }), { code: 'IBP_ERR_APP_NO_2PC' });
  t.throws(() => echo.commit(), { code: 'IBP_ERR_APP_NO_2PC' });
});

t.test('hostile bin names and bad options are refused', async (t) => {
  const home = makeHome(t, ['ibp_test_echo']);
  const cache = makeCache(t, home, 1);
  for (const bin of ['../so/ibp_test_echo.so', '/etc/passwd', '', 'a\u0000b.so']) {
    t.throws(() => cache.get({ app: 'X', bin }), { code: 'IBP_ERR_APP_LOAD' }, JSON.stringify(bin));
  }
  t.throws(() => new AppCache({ max: 0, soDir: home.so, log: createLogger({ name: 't', file: home.logFile }) }), { code: 'IBP_ERR_CFG_INVALID' });
  t.equal(text(cache.get(ref('ibp_test_echo')).call({}, Buffer.from('ok')).response), 'ok');
});

/**
 * Hot app update through the app cache (IBP §2.5.7): a .so replaced by rename (as ibma does) or
 * by copy over the file (same inode) is noticed — by the chokidar watcher, or by the identity
 * check when the watcher is off or late — and the next call runs the new code; `<bin>.updating`
 * is used while bin cannot be opened; bad files give clear errors and leave the process alive.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { AppCache } from '../../ibas/app-cache.js';
import { builtApp } from '../../lib/native/built-files.js';
import { createLogger } from '../../lib/log.js';
import { waitFor } from '../helpers/procs.js';

interface Home { so: string; file: string; logFile: string }

function makeHome(t: Tap.Test): Home {
  const root = t.testdir({ so: {}, file: {}, log: {} });
  return { so: path.join(root, 'so'), file: path.join(root, 'file'), logFile: path.join(root, 'log', 'worker.log') };
}

async function makeCache(t: Tap.Test, home: Home, watch: boolean, statCheckMs?: number): Promise<AppCache> {
  const log = createLogger({ name: 'ibas', file: home.logFile, level: 'debug' });
  const cache = new AppCache({ max: 4, soDir: home.so, log, watch, statCheckMs });
  t.teardown(() => cache.close());
  await cache.ready();
  return cache;
}

const APP = { app: 'ibp_test_ver', bin: 'ibp_test_ver.so' };
const V1 = builtApp('ibp_test_ver_v1');
const V2 = builtApp('ibp_test_ver_v2');
const answer = (cache: AppCache, req = 'hi') => cache.get(APP).call({}, Buffer.from(req)).response.toString();

/** ibma's way: write `<bin>.updating`, then rename it over bin. */
function replaceByRename(home: Home, src: string): void {
  const tmp = path.join(home.so, `${APP.bin}.updating`);
  fs.copyFileSync(src, tmp);
  fs.renameSync(tmp, path.join(home.so, APP.bin));
}

for (const watch of [true, false]) {
  t.test(`replace by rename → v2 (watcher ${watch ? 'on' : 'off'})`, async (t) => {
    const home = makeHome(t);
    fs.copyFileSync(V1, path.join(home.so, APP.bin));
    const cache = await makeCache(t, home, watch);
    t.equal(answer(cache), 'v1:hi');
    const v1 = cache.get(APP);
    replaceByRename(home, V2);
    if (watch) await waitFor('the watcher to mark v1 stale', () => v1.stale, 10_000);
    t.equal(answer(cache), 'v2:hi', 'the next call runs the new code');
    t.notOk(v1.loaded, 'the old handle is unloaded');
    t.equal(cache.stats().loads, 2);
    // a second replace right after the first: chokidar may swallow its event (it throttles
    // 'change' per file); the identity check of get() (every statCheckMs) still sees it
    replaceByRename(home, V1);
    t.equal(await waitFor('v1 to answer again', () => answer(cache) === 'v1:hi' && 'v1', 10_000), 'v1', 'and back');
  });

  t.test(`replace by copy over the file, same inode → v2 (watcher ${watch ? 'on' : 'off'})`, async (t) => {
    const home = makeHome(t);
    const bin = path.join(home.so, APP.bin);
    fs.copyFileSync(V1, bin);
    const ino = fs.statSync(bin).ino;
    const cache = await makeCache(t, home, watch);
    t.equal(answer(cache), 'v1:hi');
    const v1 = cache.get(APP);
    fs.writeFileSync(bin, fs.readFileSync(V2)); // truncate + rewrite in place
    t.equal(fs.statSync(bin).ino, ino, 'same inode');
    if (watch) await waitFor('the watcher to mark v1 stale', () => v1.stale, 10_000);
    t.equal(answer(cache), 'v2:hi', 'a private copy is loaded, so dlopen cannot return the old code');
    t.equal(answer(cache, 'again'), 'v2:again', 'the loaded code is not the file being rewritten');
  });
}

t.test('with the watcher up and statCheckMs 0, get() still checks the file every time', async (t) => {
  const home = makeHome(t);
  fs.copyFileSync(V1, path.join(home.so, APP.bin));
  const cache = await makeCache(t, home, true, 0);
  t.equal(answer(cache), 'v1:hi');
  replaceByRename(home, V2);
  t.equal(answer(cache), 'v2:hi', 'no wait for the watcher');
});

t.test('evictIdle unloads what changed, runs soclean, leaves the rest', async (t) => {
  const home = makeHome(t);
  fs.copyFileSync(V1, path.join(home.so, APP.bin));
  fs.copyFileSync(builtApp('ibp_test_life'), path.join(home.so, 'ibp_test_life.so'));
  const cache = await makeCache(t, home, false);
  const life = { app: 'ibp_test_life', bin: 'ibp_test_life.so' };
  t.equal(cache.get(life).call({}, Buffer.alloc(0)).response.toString(), 'life:1');
  t.equal(answer(cache), 'v1:hi');
  t.equal(cache.evictIdle(), 0, 'nothing changed');
  fs.copyFileSync(builtApp('ibp_test_life'), path.join(home.so, 'ibp_test_life.so.updating'));
  fs.renameSync(path.join(home.so, 'ibp_test_life.so.updating'), path.join(home.so, 'ibp_test_life.so'));
  t.equal(cache.evictIdle(), 1, 'the replaced one');
  t.notOk(cache.has('ibp_test_life.so'));
  t.ok(cache.has(APP.bin));
  t.match(fs.readFileSync(path.join(home.file, 'ibp_test_life.log'), 'utf8'), /^init \d+\nclean \d+\n$/);
  t.equal(cache.get(life).call({}, Buffer.alloc(0)).response.toString(), 'life:1', 'a fresh load');
  fs.rmSync(path.join(home.so, APP.bin));
  t.equal(cache.evictIdle(), 1, 'a removed file is evicted too');
});

t.test('bin missing, <bin>.updating present → the .updating file serves; then bin again', async (t) => {
  const home = makeHome(t);
  const updating = path.join(home.so, `${APP.bin}.updating`);
  fs.copyFileSync(V2, updating);
  const cache = await makeCache(t, home, true);
  t.equal(answer(cache), 'v2:hi');
  const viaUpdating = cache.get(APP);
  t.ok(viaUpdating.fromUpdating);
  t.equal(viaUpdating.file, updating);
  fs.copyFileSync(V1, path.join(home.so, APP.bin)); // bin appears (a different version, to tell)
  await waitFor('the watcher to mark the .updating load stale', () => viaUpdating.stale, 10_000);
  t.equal(answer(cache), 'v1:hi', 'bin is preferred again as soon as it exists');
  t.notOk(cache.get(APP).fromUpdating);
  t.notOk(viaUpdating.loaded);
});

t.test('bin not loadable (not ELF), .updating good → .updating serves', async (t) => {
  const home = makeHome(t);
  fs.writeFileSync(path.join(home.so, APP.bin), 'half written garbage');
  fs.copyFileSync(V2, path.join(home.so, `${APP.bin}.updating`));
  const cache = await makeCache(t, home, false);
  t.equal(answer(cache), 'v2:hi');
  t.ok(cache.get(APP).fromUpdating);
});

t.test('an update being written does not disturb the loaded bin', async (t) => {
  const home = makeHome(t);
  fs.copyFileSync(V1, path.join(home.so, APP.bin));
  const cache = await makeCache(t, home, true);
  t.equal(answer(cache), 'v1:hi');
  const v1 = cache.get(APP);
  fs.writeFileSync(path.join(home.so, `${APP.bin}.updating`), fs.readFileSync(V2).subarray(0, 100));
  // give the watcher every chance to (wrongly) react
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(v1.stale, 'still current');
  t.equal(answer(cache), 'v1:hi');
  t.equal(cache.get(APP), v1);
});

t.test('missing bin and .updating → IBP_ERR_APP_LOAD naming both, process alive', async (t) => {
  const home = makeHome(t);
  const cache = await makeCache(t, home, false);
  const err = t.throws(() => cache.get(APP), { code: 'IBP_ERR_APP_LOAD' }) as Error;
  t.match(err.message, /ibp_test_ver\.so: no such file; ibp_test_ver\.so\.updating: no such file/);
  t.equal(cache.stats().loadFailures, 1);
  t.match(fs.readFileSync(home.logFile, 'utf8'), /app load failed , bin\[ibp_test_ver\.so\]/);
});

t.test('bad .so files give clear errors and the process stays alive', async (t) => {
  const home = makeHome(t);
  const cache = await makeCache(t, home, false);
  const cases: [string, Buffer | string, RegExp][] = [
    ['notelf.so', 'this is not an ELF file', /invalid ELF header|file too short/],
    ['empty.so', '', /file too short|invalid ELF header/],
    ['nosomain.so', fs.readFileSync(builtApp('ibp_test_nosomain')), /does not export somain/],
    ['bootfail.so', fs.readFileSync(builtApp('ibp_test_bootfail')), /soinit returned 3/],
    ['undef.so', fs.readFileSync(builtApp('ibp_test_undef')), /undefined symbol: ibp_no_such_function/],
    ['abi99.so', fs.readFileSync(builtApp('ibp_test_abi99')), /built for app ABI 99, this server speaks 1/],
  ];
  for (const [bin, content, why] of cases) {
    fs.writeFileSync(path.join(home.so, bin), content);
    const err = t.throws(() => cache.get({ app: 'BAD', bin }), { code: 'IBP_ERR_APP_LOAD' }) as Error;
    t.match(err.message, why, bin);
    t.match(err.message, /app BAD: cannot load/);
  }
  fs.mkdirSync(path.join(home.so, 'adir.so'));
  t.throws(() => cache.get({ app: 'BAD', bin: 'adir.so' }), { code: 'IBP_ERR_APP_LOAD', message: /not a regular file/ });
  t.equal(cache.stats().size, 0, 'nothing half-loaded is cached');
  fs.copyFileSync(V1, path.join(home.so, APP.bin));
  t.equal(answer(cache), 'v1:hi', 'a good app still loads');
  t.same(fs.readdirSync(cache.privateDir).filter((n) => n !== 'node_modules'), [], 'no private copies left behind (node_modules/ibp-ts is the framework link)');
});

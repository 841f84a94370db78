/**
 * `npm pack` gives an installable package (issue 15): the tarball holds the built code, the C
 * sources and headers of the native parts and no tests; installed with npm into a folder outside
 * the repo (from the local npm cache: --prefer-offline) its `install` script builds the native
 * parts with gcc, and `ibp-ts`, `ibp-ts/app` and `ibp-ts/testing` import and run an app there.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collect, ROOT } from '../helpers/procs.js';

// npm installs the dependencies (from the cache) and builds lz4/shm-typed-array/ibp-ts natively:
// on a loaded 2-core machine this alone took ~3 minutes, so this file gets more than tap's 240 s
t.setTimeout(480_000);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-npm-pack-')); // outside the repo
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const tarball = path.join(tmp, `ibp-ts-${version}.tgz`);
const run = (cmd: string, args: string[], cwd: string, timeoutMs = 60_000) =>
  collect(spawn(cmd, args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] }), undefined, timeoutMs, `${cmd} ${args.join(' ')}`);

t.test('npm pack: built code, native sources, no tests', async (t) => {
  // dist/ and build/ are built already (npm test builds first): no need to run prepare again
  const r = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
  t.equal(r.code, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const f of ['dist/ibac/index.js', 'dist/lib/app/api.d.ts', 'dist/lib/app/testing.js', 'dist/ibas/app-js.js', 'dist/ibas/apps/ibp_ts_echo.mjs',
    'lib/native/ibp_app.h', 'lib/native/ibp_host.c', 'scripts/build-apps.sh', 'scripts/prepare.mjs', 'bin/ibas', 'bin/ibpgen', 'docs/apps.md']) {
    t.ok(files.includes(f), `has ${f}`);
  }
  t.notOk(files.some((f) => f.startsWith('test/')), 'no tests');
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps');
  t.notOk(files.some((f) => /^bin\/.*\.ts$/.test(f)), 'no TypeScript mains');
  t.notOk(files.some((f) => f.startsWith('build/')), 'no prebuilt native parts: the install builds them for its machine');
  t.ok(fs.existsSync(tarball), 'the tarball');
});

t.test('installed outside the repo: native parts built, the three entry points work', async (t) => {
  const app = path.join(tmp, 'consumer');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  const inst = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], app, 200_000);
  t.equal(inst.code, 0, inst.stderr);
  const pkg = path.join(app, 'node_modules', 'ibp-ts');
  t.ok(fs.existsSync(path.join(pkg, 'build', 'native', 'libibp_host.so')), 'the install script built the host helper with gcc');
  t.ok(fs.existsSync(path.join(pkg, 'build', 'apps', 'ibp_ts_echo.mjs')), 'and put the example apps in build/apps');
  fs.writeFileSync(path.join(app, 'main.mjs'), `
import { createEnvironment } from 'ibp-ts';
import { APP_ABI_VERSION } from 'ibp-ts/app';
import { runApp } from 'ibp-ts/testing';
const b = ${JSON.stringify(path.join(pkg, 'build', 'apps'))};
const js = await runApp(b + '/ibp_ts_echo.mjs', { request: 'js from the tarball' });
const c = await runApp(b + '/ibp_test_echo.so', { request: 'c from the tarball' });
console.log(JSON.stringify({ env: typeof createEnvironment, abi: APP_ABI_VERSION, js: js.response.toString(), c: c.response.toString() }));
`);
  const r = await run(process.execPath, ['main.mjs'], app);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { env: 'function', abi: 1, js: 'js from the tarball', c: 'c from the tarball' });
  t.notOk(fs.realpathSync(pkg).startsWith(ROOT), 'the package is a copy, not the repo');
  fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * `ibpgen new-app NAME --lang ts|c` (issue 15): the scaffold of each language builds and its own
 * test passes (`npm run build` + `npm test`; `make` + `make test`), against this checkout of
 * ibp-ts linked into the app's node_modules (no network install); bad names and a non-empty
 * folder are usage errors.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, collect, ROOT } from '../helpers/procs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-new-app-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const run = (cmd: string, args: string[], cwd: string, timeoutMs = 90_000) =>
  collect(spawn(cmd, args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] }), undefined, timeoutMs, `${cmd} ${args.join(' ')}`);

/** What `npm install` would give the app, from this checkout: links, no network. */
function linkModules(dir: string, mods: string[]): void {
  const nm = path.join(dir, 'node_modules');
  fs.mkdirSync(path.join(nm, '@types'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(nm, 'ibp-ts'));
  for (const m of mods) fs.symlinkSync(path.join(ROOT, 'node_modules', m), path.join(nm, m));
  if (mods.includes('typescript')) {
    fs.mkdirSync(path.join(nm, '.bin'));
    fs.symlinkSync('../typescript/bin/tsc', path.join(nm, '.bin', 'tsc'));
  }
}

t.test('--lang ts: npm run build, npm test', async (t) => {
  const r = await run(process.execPath, [BIN('ibpgen'), 'new-app', 'hello_ts', '--lang', 'ts', '--dir', tmp, '--ibp-ts', `file:${ROOT}`], tmp);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /new-app ok , app\[hello_ts\] lang\[ts\]/);
  const dir = path.join(tmp, 'hello_ts');
  t.same(fs.readdirSync(dir).sort(), ['.gitignore', 'README.md', 'package.json', 'src', 'test', 'tsconfig.json']);
  linkModules(dir, ['typescript', '@types/node']);
  const build = await run('npm', ['run', 'build'], dir);
  t.equal(build.code, 0, build.stdout + build.stderr);
  t.ok(fs.existsSync(path.join(dir, 'dist', 'hello_ts.mjs')), 'dist/hello_ts.mjs, the package to deploy');
  const test = await run('npm', ['test'], dir);
  t.equal(test.code, 0, test.stdout + test.stderr);
  t.match(test.stdout, /# pass 3/, 'its three tests pass');
  // a type error in the app fails the build: the API is really type-checked
  fs.appendFileSync(path.join(dir, 'src', 'hello_ts.mts'), '\nexport function bad(ctx: import("ibp-ts/app").AppContext): number { return ctx.nosuch; }\n');
  const bad = await run('npm', ['run', 'build'], dir);
  t.not(bad.code, 0, 'tsc refuses a context member that does not exist');
  t.match(bad.stdout + bad.stderr, /nosuch/);
});

t.test('--lang c: make, make test', async (t) => {
  const r = await run(process.execPath, [BIN('ibpgen'), 'new-app', 'hello_c', '--lang', 'c', '--dir', tmp, '--ibp-ts', `file:${ROOT}`], tmp);
  t.equal(r.code, 0, r.stderr);
  const dir = path.join(tmp, 'hello_c');
  linkModules(dir, []);
  const make = await run('make', [], dir);
  t.equal(make.code, 0, make.stdout + make.stderr);
  t.ok(fs.existsSync(path.join(dir, 'hello_c.so')));
  const test = await run('make', ['test'], dir);
  t.equal(test.code, 0, test.stdout + test.stderr);
  t.match(test.stdout, /# pass 3/);
});

t.test('bad input: a usage error, nothing written', async (t) => {
  const bad = await run(process.execPath, [BIN('ibpgen'), 'new-app', '9lives', '--dir', tmp], tmp);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /not an app name/);
  const lang = await run(process.execPath, [BIN('ibpgen'), 'new-app', 'x', '--lang', 'cobol', '--dir', tmp], tmp);
  t.equal(lang.code, 2);
  const again = await run(process.execPath, [BIN('ibpgen'), 'new-app', 'hello_c', '--lang', 'c', '--dir', tmp], tmp);
  t.equal(again.code, 2);
  t.match(again.stderr, /exists and is not empty/);
  t.notOk(fs.existsSync(path.join(tmp, '9lives')));
});

t.test('without --ibp-ts the app depends on this checkout (ibp-ts is private: no registry serves it)', async (t) => {
  const r = await run(process.execPath, [BIN('ibpgen'), 'new-app', 'dflt_ts', '--dir', tmp], tmp);
  t.equal(r.code, 0, r.stderr);
  const pkg = JSON.parse(fs.readFileSync(path.join(tmp, 'dflt_ts', 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  t.equal(pkg.devDependencies['ibp-ts'], `file:${ROOT}`, 'file: the checkout that ran ibpgen');
  t.ok(fs.existsSync(path.join(pkg.devDependencies['ibp-ts']!.slice('file:'.length), 'package.json')), 'a folder npm install can link');
});

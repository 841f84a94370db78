#!/usr/bin/env node
// The package's build hooks (package.json):
//   prepare  (`npm ci` / `npm install` in a checkout, `npm pack`): tsc when typescript is installed,
//            then the native parts. Without typescript (a release installed with --omit=dev) the
//            shipped dist/ is used as it is; without dist/ either, it fails saying what to do.
//   install  (`node scripts/prepare.mjs --native`; also when the package is installed from a
//            tarball or a registry): only the native parts, with gcc (scripts/build-apps.sh, which
//            rebuilds only what is missing or older than its source).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeOnly = process.argv.includes('--native');
const say = (m) => process.stderr.write(`ibp-ts ${nativeOnly ? 'install' : 'prepare'}: ${m}\n`);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) return { ok: false, why: r.error.message };
  return { ok: r.status === 0, why: `exit ${r.status ?? r.signal}` };
}

if (!nativeOnly) {
  let tsc;
  try {
    tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    tsc = undefined;
  }
  if (tsc && fs.existsSync(path.join(root, 'tsconfig.json'))) {
    const r = run(process.execPath, [tsc, '-p', 'tsconfig.json']);
    if (!r.ok) {
      say(`tsc failed (${r.why})`);
      process.exit(1);
    }
    // assets tsc does not emit (package.json build:ts does the same)
    const page = path.join(root, 'ibms', 'console', 'page.html');
    if (fs.existsSync(page)) fs.copyFileSync(page, path.join(root, 'dist', 'ibms', 'console', 'page.html'));
  } else if (fs.existsSync(path.join(root, 'dist', 'bin', 'ibas.js'))) {
    say('typescript is not installed: using the shipped dist/');
  } else {
    say('dist/ is missing and typescript is not installed: run `npm install` with dev dependencies (or install a release, which ships dist/)');
    process.exit(1);
  }
}

const gcc = spawnSync(process.env.CC || 'gcc', ['--version'], { stdio: 'ignore' });
if (gcc.error || gcc.status !== 0) {
  if (fs.existsSync(path.join(root, 'build', 'native', 'libibp_host.so'))) {
    say('no C compiler: keeping the native parts already in build/');
    process.exit(0);
  }
  say(`no C compiler (${process.env.CC || 'gcc'}): the native parts (build/native/*.so) cannot be built; install gcc and run \`npm rebuild ibp-ts\``);
  process.exit(1);
}
const r = run('bash', [path.join('scripts', 'build-apps.sh')]);
if (!r.ok) {
  say(`building the native parts failed (${r.why})`);
  process.exit(1);
}

/**
 * pack.sh builds a release tarball; unpacked elsewhere (with the installed node_modules linked in)
 * its ibcmd starts, runs a command through its own scripts/ folder and stops.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { collect, freePort, loopbackIp, reapHome, ROOT } from '../helpers/procs.js';
import { runScript } from './run-script.js';

const root = t.testdir({ out: {}, unpack: {}, home: {} });
const home = path.join(root, 'home');
t.teardown(() => reapHome(home));
const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const name = `ibp-ts-${version}-bin`;

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  collect(spawn(cmd, args, { env: { ...process.env, IBP_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }), undefined, 60_000, `${cmd} ${args.join(' ')}`);

t.test('bad arguments print the usage', async (t) => {
  let r = await runScript('pack.sh', ['--bogus'], { home });
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown argument "--bogus"[\s\S]*USAGE : pack\.sh/);
  r = await runScript('pack.sh', ['-o', path.join(root, 'nope')], { home });
  t.equal(r.code, 2);
  t.match(r.stderr, /output folder .*nope does not exist/);
});

t.test('the tarball holds one folder with what a host runs, and no sources of tests', async (t) => {
  const r = await runScript('pack.sh', ['-o', path.join(root, 'out')], { home });
  t.equal(r.code, 0, r.stderr);
  const tarball = path.join(root, 'out', `${name}.tar.gz`);
  t.match(r.stdout, `pack ok , ${tarball}`);
  const list = (await run('tar', ['tzf', tarball])).stdout.split('\n').filter(Boolean);
  t.ok(list.every((f) => f.startsWith(`${name}/`)), 'one top folder');
  for (const f of ['bin/ibcmd', 'bin/ibas', 'dist/bin/ibcmd.js', 'dist/ibcmd/agent.js', 'scripts/ibas_cluster.sh', 'scripts/daemon-control.sh', 'etc/ibp_cluster.conf', 'etc/ibcmd.conf', 'package.json', 'lib/native/ibp_app.h']) {
    t.ok(list.includes(`${name}/${f}`), `has ${f}`);
  }
  t.notOk(list.some((f) => f.startsWith(`${name}/test/`)), 'no tests');
  t.notOk(list.some((f) => /^[^/]+\/bin\/.*\.ts$/.test(f)), 'no TypeScript mains in bin/');
  t.notOk(list.some((f) => f.includes('node_modules/')), 'no node_modules unless asked');
  const x = await run('tar', ['xzf', tarball, '-C', path.join(root, 'unpack')]);
  t.equal(x.code, 0, x.stderr);
});

t.test('the unpacked release runs: its ibcmd starts and runs its own scripts', async (t) => {
  const rel = path.join(root, 'unpack', name);
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(rel, 'node_modules'));
  const ip = loopbackIp();
  const port = await freePort(ip);
  const ibcmd = path.join(rel, 'bin', 'ibcmd');
  let r = await run(ibcmd, ['-a', 'init', '--ip', ip, '--port', String(port)]);
  t.equal(r.code, 0, r.stderr);
  t.match(fs.readFileSync(path.join(home, 'etc', 'ibcmd.conf'), 'utf8'), `"${path.join(rel, 'scripts')}"`, 'the release\'s scripts/ is on the command PATH');
  r = await run(path.join(rel, 'scripts', 'ibcmd.sh'), ['start']);
  t.equal(r.code, 0, r.stderr);
  r = await run(ibcmd, ['-a', 'execmd', '--cmd', 'ibcmd.sh status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /│ \d+ /, 'the agent ran the release\'s ibcmd.sh status');
  r = await run(path.join(rel, 'scripts', 'ibcmd.sh'), ['stop']);
  t.equal(r.code, 0, r.stderr);
});

t.test("the release's npm hooks: prepare uses the shipped dist/ (no tsc), install builds the native parts", async (t) => {
  const rel = path.join(root, 'unpack', name);
  const built = path.join(rel, 'build', 'native', 'libibp_host.so');
  fs.rmSync(path.join(rel, 'build'), { recursive: true, force: true }); // as if unpacked on another machine
  let r = await run('npm', ['run', 'install', '--prefix', rel]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.ok(fs.existsSync(built), 'the install hook built the host helper with gcc');
  r = await run('npm', ['run', 'prepare', '--prefix', rel]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stderr, /using the shipped dist\//, 'prepare does not need typescript in a release');
});

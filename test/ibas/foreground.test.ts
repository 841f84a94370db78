// `ibas -a start --foreground`: one process serving (for a debugger), stoppable with SIGTERM,
// leaving nothing behind; with --app FILE, one app file without a config space.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { RC } from '../../lib/protocol/result-codes.js';
import { BIN, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, echoLoop, setupIbas } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

t.test('foreground mode serves and stops', async (t) => {
  const s = await setupIbas(t);
  const child = spawn(process.execPath, [BIN('ibas'), '-f', s.conf, '-a', 'start', '--foreground'], { env: { ...process.env, IBP_HOME: s.home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { child.kill('SIGKILL'); });
  await waitFor('foreground ready', () => stderr.includes('ibas foreground ok'), 20_000);
  t.equal(s.managerPid(), child.pid, 'the pid file names the foreground process');
  const slots = s.slots();
  t.equal(slots.length, 1, 'one worker slot');
  t.equal(slots[0]!.pid, child.pid, 'the one worker is the process itself');

  t.equal(await echoLoop(s, 50), 50, 'long connection echoes');
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'short')).body.toString(), 'short');
  const st = await s.ibas(['-f', s.conf, '-s', 'status', '--json']);
  t.match(JSON.parse(st.stdout), { running: true, mode: 'FOREGROUND', workers: 1 });

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
  t.match(stderr, /transaction , journal\[J0\] app\[ibp_test_echo\]/, 'logs go to the terminal');
  await assertStoppedClean(t, s);
});

t.test('foreground --app FILE: one app file served without a config space, reloaded when it changes', async (t) => {
  const s = await setupIbas(t, { noSpace: true });
  const file = path.join(s.home, 'my_app.mjs');
  fs.writeFileSync(file, "export function main(ctx) { ctx.write('one:' + ctx.app + ':' + ctx.request.toString()); }\n");
  const child = spawn(process.execPath, [BIN('ibas'), '-f', s.conf, '-a', 'start', '--foreground', '--app', file, '--app-code', 'mine'], { env: { ...process.env, IBP_HOME: s.home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { child.kill('SIGKILL'); });
  await waitFor('foreground ready', () => stderr.includes('ibas foreground ok'), 20_000);
  t.equal((await callOnce(s.ip, s.port, 'mine', 'hi')).body.toString(), 'one:mine:hi', 'the app file answers under its code');
  t.equal((await callOnce(s.ip, s.port, 'other', 'hi')).rc, RC.APP_UNKNOWN, 'another code is unknown');
  fs.writeFileSync(`${file}.tmp`, "export function main(ctx) { ctx.write('two:' + ctx.request.toString()); }\n");
  fs.renameSync(`${file}.tmp`, file);
  await waitFor('the new version', async () => ((await callOnce(s.ip, s.port, 'mine', 'x')).body.toString() === 'two:x' ? true : undefined), 10_000);
  t.pass('a changed file is the new version on a next call');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
  t.match(stderr, /serving one app file/);
});

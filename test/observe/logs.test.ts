/**
 * Logs you can use: no key twice in a line; transaction lines carry their fields as JSON keys
 * (journal, app, rc, client, timings, generation, slot); size- and cron-based rotation that loses
 * no line, also when another process rotates a shared file; `ibas -s logs` / `ibms -s logs`
 * pretty-print (or `--json` pass through) a home's logs, `--follow` prints new lines as they come.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { closeLogFile, createLogger, dedupeFields, startLogRotation } from '../../lib/log.js';
import { shiftFiles } from '../../lib/log-rotate.js';
import { tailLogs } from '../../lib/log-tail.js';
import { setupIbas } from '../ibas/helpers/server.js';
import { TestClient } from '../ibas/helpers/client.js';
import { privateDir } from '../helpers/cluster.js';
import { BIN, collect, runTool, waitFor } from '../helpers/procs.js';

const keyCount = (line: string, key: string): number => line.split(`"${key}":`).length - 1;

t.test('a record never repeats a base key', async (t) => {
  t.same(dedupeFields({ pid: 7, app: 'A' }, { pid: 1 }), { child_pid: 7, app: 'A' });
  t.same(dedupeFields({ pid: 1 }, { pid: 1 }), {}, 'an equal value is dropped');
  t.same(dedupeFields({ slot: 2, msg: 'x' }, { pid: 1, slot: 3 }), { slot_field: 2, msg_field: 'x' });
  const dir = privateDir(t, 'logdup');
  const file = path.join(dir, 'a.log');
  const log = createLogger({ name: 'test', file, base: { role: 'monitor' } });
  log.warn({ pid: 4242, slot: 1 }, 'worker exited , pid[4242]');
  const line = fs.readFileSync(file, 'utf8').trim();
  t.equal(keyCount(line, 'pid'), 1, 'one pid key');
  t.match(JSON.parse(line), { pid: process.pid, child_pid: 4242, slot: 1, role: 'monitor' });
  closeLogFile(file); // before its folder goes: a later rotation must not re-create it
});

t.test('rotation by size keeps every line; a file rotated by another process is reopened', async (t) => {
  const dir = privateDir(t, 'logrot');
  const file = path.join(dir, 'rot.log');
  const log = createLogger({ name: 'test', file });
  const rot = startLogRotation({ size: 4096, keep: 50 }, 20)!;
  t.teardown(() => startLogRotation(undefined));
  for (let i = 0; i < 300; i++) {
    log.info({ n: i }, `line ${i} ${'x'.repeat(60)}`);
    if (i % 30 === 29) await waitFor(`rotation after line ${i}`, () => fs.statSync(file).size < 4096 || !fs.existsSync(file) ? true : undefined, 5000, 5);
  }
  await waitFor('at least 3 rotations', () => rot.rotations >= 3, 5000, 20);
  // another process (logrotate, a sibling) moves the file away: this one must follow
  shiftFiles(file, 50);
  await waitFor('the file re-created by reopen', () => fs.existsSync(file), 5000, 20);
  log.info({ n: 300 }, 'line 300 after an outside rotation');
  const all = fs.readdirSync(dir).filter((f) => f.startsWith('rot.log')).flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean));
  const seen = new Set(all.map((l) => (JSON.parse(l) as { n: number }).n));
  t.equal(seen.size, 301, 'every line is in one of the files');
  t.match(fs.readFileSync(file, 'utf8'), /line 300 after an outside rotation/, 'the newest line is in the current file');
  t.ok(fs.existsSync(`${file}.3`), 'numbered copies');
  startLogRotation(undefined);
  closeLogFile(file);
});

t.test('a buffered log (a worker\'s) writes its held lines to the file they were logged to before a rotation', async (t) => {
  const dir = privateDir(t, 'logrotbuf');
  const file = path.join(dir, 'buf.log');
  const log = createLogger({ name: 'test', file, bufferBytes: 64 * 1024 });
  t.teardown(() => closeLogFile(file));
  const rot = startLogRotation({ cron: '0 0 1 1 *', keep: 5 }, 60_000)!; // driven by hand below
  t.teardown(() => startLogRotation(undefined));
  for (let i = 0; i < 5; i++) log.info({ n: i }, `held line ${i}`);
  t.equal(fs.readFileSync(file, 'utf8'), '', 'the lines are held in memory (under the buffer size, no wait yet)');
  rot.rotateAll();
  log.info({ n: 5 }, 'after the rotation');
  closeLogFile(file);
  const rotated = fs.readdirSync(dir).filter((f) => f !== 'buf.log');
  t.equal(rotated.length, 1, `one rotated file (${rotated.join(', ')})`);
  if (rotated.length !== 1) return;
  const before = fs.readFileSync(path.join(dir, rotated[0]!), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { n: number }).n);
  const after = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { n: number }).n);
  t.same(before, [0, 1, 2, 3, 4], 'the held lines went to the file before the cut');
  t.same(after, [5], 'the new file starts with the line logged after it');
});

t.test('rotation by cron, whatever the size', async (t) => {
  const dir = privateDir(t, 'logcron');
  const file = path.join(dir, 'cron.log');
  const log = createLogger({ name: 'test', file });
  startLogRotation({ cron: '* * * * * *', keep: 3 }, 50);
  t.teardown(() => startLogRotation(undefined));
  log.info('before');
  await waitFor('a cron rotation', () => fs.existsSync(`${file}.1`), 5000, 50);
  t.match(fs.readFileSync(`${file}.1`, 'utf8'), /before/);
  startLogRotation(undefined);
  closeLogFile(file);
});

t.test('--follow keeps no abort listener per poll (no MaxListenersExceededWarning)', async (t) => {
  const dir = privateDir(t, 'logfollow');
  const file = path.join(dir, 'f.log');
  fs.writeFileSync(file, '');
  const ac = new AbortController();
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  let polls = 0;
  const most = { listeners: 0 };
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const files = (): string[] => {
    polls++;
    most.listeners = Math.max(most.listeners, getEventListeners(ac.signal, 'abort').length);
    return [file];
  };
  const following = tailLogs({ files, lines: 0, follow: true, json: true, out: sink, signal: ac.signal, pollMs: 1 });
  await waitFor('30 polls', () => polls >= 30, 20_000, 5);
  ac.abort();
  t.equal(await following, 0, 'an abort ends the follow');
  t.ok(most.listeners <= 1, `at most one abort listener at any poll (saw ${most.listeners})`);
  t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'none left after');
  await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
  t.same(warnings.filter((w) => /MaxListeners/.test(w)), [], 'no MaxListenersExceededWarning');
});

t.test('transaction lines as JSON keys; `ibas -s logs` pretty, --json raw, --follow live', async (t) => {
  const s = await setupIbas(t, { maxCount: 1 });
  await s.start();
  const c = await TestClient.connect(s.ip, s.port);
  t.teardown(() => c.socket.destroy());
  t.equal((await c.call('ibp_test_echo', 'hello', { journal: 'J-LOG-1', clientNode: 'LOGCLI' })).rc, 0);
  // the worker logs the line once the answer is sent: poll for it
  const line = await waitFor('the transaction line', () => s.log(0).split('\n').find((l) => l.includes('"journal":"J-LOG-1"')), 10_000, 20);
  const rec = JSON.parse(line) as Record<string, any>;
  t.match(rec, { kind: 'transaction', journal: 'J-LOG-1', app: 'ibp_test_echo', rc: 0, rc_name: 'OK', app_rc: 0, client: { node: 'LOGCLI', ip: String }, via: 'binary', slot: 0, generation: 1, role: 'worker' });
  t.type(rec.timings.receive_us, 'number');
  t.equal(rec.timings.total_us, rec.timings.receive_us + rec.timings.app_us + rec.timings.send_us);
  for (const k of ['pid', 'app', 'rc', 'slot', 'msg']) t.equal(keyCount(line, k), 1, `one "${k}" key`);

  const pretty = await s.ibas(['-f', s.conf, '-s', 'logs', '--lines', '200']);
  t.equal(pretty.code, 0, pretty.stderr);
  t.match(pretty.stdout, /INFO.*transaction , journal\[J-LOG-1\] app\[ibp_test_echo\]/, 'pretty-printed');
  t.notMatch(pretty.stdout, /^\{"level"/m, 'no raw JSON');
  t.match(pretty.stdout, /manager started/, 'the monitor log is merged in');
  const raw = await s.ibas(['-f', s.conf, '-s', 'logs', '--json', '--lines', '5']);
  t.equal(raw.stdout.trim().split('\n').length, 5, '--lines');
  for (const l of raw.stdout.trim().split('\n')) t.doesNotThrow(() => JSON.parse(l), '--json lines are JSON');

  const follow = spawn(BIN('ibas'), ['-f', s.conf, '-s', 'logs', '--follow', '--lines', '1'], { env: { ...process.env, IBP_HOME: s.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  const done = collect(follow, undefined, 60_000, 'ibas -s logs --follow');
  let seen = '';
  follow.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
  await waitFor('the last line printed first', () => seen.length > 0, 30_000, 20); // it has read the files' ends
  t.equal(seen.trim().split('\n').length, 1, '--lines 1: one old line');
  t.equal((await c.call('ibp_test_echo', 'again', { journal: 'J-LOG-2' })).rc, 0);
  await waitFor('the new line followed', () => seen.includes('journal[J-LOG-2]'), 15_000, 50);
  follow.kill('SIGINT');
  const r = await done;
  t.equal(r.code, 0, 'Ctrl-C ends it with 0');
  t.notMatch(r.stderr, /MaxListenersExceededWarning/, 'no listener leak warning');
  t.equal((await s.stop()).code, 0);
});

t.test('`ibms -s logs` prints the registry home\'s logs', async (t) => {
  const home = privateDir(t, 'ibmslogs');
  t.equal((await runTool('ibms', ['-a', 'init', '--ip', '127.0.0.1', '--port', '1'], { home })).code, 0);
  const log = createLogger({ name: 'ibms', file: path.join(home, 'log', 'ibms_worker.log'), base: { role: 'worker' } });
  log.info('distribute_config , nodes[N1:2]');
  const r = await runTool('ibms', ['-s', 'logs'], { home });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /INFO.*distribute_config , nodes\[N1:2\]/);
});

t.test('-s logs prints a line found in two files (own log and event log) once, also when following', async (t) => {
  const { tailLogs } = await import('../../lib/log-tail.js');
  const { PassThrough } = await import('node:stream');
  const dir = privateDir(t, 'logtail');
  const own = path.join(dir, 'ibms_worker.log');
  const event = path.join(dir, 'event.log');
  const line = (n: number, level = 40): string => JSON.stringify({ level, time: `2026-01-01T00:00:0${n}.000Z`, pid: 1, msg: `line ${n}` });
  fs.writeFileSync(own, `${line(1, 30)}\n${line(2)}\n${line(3, 30)}\n${line(3, 30)}\n`);
  fs.writeFileSync(event, `${line(2)}\n`);
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const ac = new AbortController();
  const done = tailLogs({ files: () => [own, event], lines: 50, follow: true, json: true, out, signal: ac.signal, pollMs: 20 });
  await waitFor('the first lines', () => text.split('\n').filter(Boolean).length >= 4 || undefined, 5000, 10);
  fs.appendFileSync(own, `${line(4)}\n`);
  fs.appendFileSync(event, `${line(4)}\n`);
  fs.appendFileSync(event, `${line(5, 30)}\n`); // after the duplicate in the same file: once it is out, the duplicate was judged
  await waitFor('the followed lines', () => text.includes('line 5') || undefined, 5000, 10);
  ac.abort();
  t.equal(await done, 0);
  const msgs = text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg);
  t.same(msgs, ['line 1', 'line 2', 'line 3', 'line 3', 'line 4', 'line 5'], 'the shared warn lines once; a line twice in one file stays twice');
});

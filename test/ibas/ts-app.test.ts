/**
 * TypeScript apps in a real ibas (issue 15): the example apps (build/apps/ibp_ts_*.mjs, compiled
 * from ibas/apps/*.mts) over the binary protocol and HTTP, attached files both ways, this node's
 * KV from the config space; and the isolation of a JS app that throws (typed answer, the worker
 * serves on), loops forever (tier-1 alarm: APP_TIMEOUT, that worker replaced) or allocates without
 * bound (its worker dies at `app.js_max_heap_mb`, the client gets the crash answer, the pool
 * serves on).
 */
import t from 'tap';
import http from 'node:http';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient, callOnce } from './helpers/client.js';

function post(ip: string, port: number, p: string, body: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: p, method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('TS apps in a pool: binary, HTTP, files, KV; throw / loop / allocate isolated', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    kvs: { colour: 'blue' },
    apps: [
      { app: 'ibp_ts_echo', bin: 'ibp_ts_echo.mjs' },
      { app: 'ibp_ts_file', bin: 'ibp_ts_file.mjs' },
      { app: 'ibp_ts_kv', bin: 'ibp_ts_kv.mjs' },
      { app: 'fix', bin: 'ibp_ts_fixture.mjs', timeout: 1 },
      { app: 'fixalloc', bin: 'ibp_ts_fixture.mjs', timeout: 20 },
      { app: 'asy', bin: 'ibp_ts_async.mjs', timeout: 3 }, // its first call starts the app thread: room for a loaded machine
    ],
    patch: (c) => { c.app.js_max_heap_mb = 96; },
  });
  await s.start();
  await waitWorkers(s, 2);

  const c = await TestClient.connect(s.ip, s.port);
  let ok = 0;
  for (let i = 0; i < 200; i++) {
    const req = `ts echo ${i} ${'y'.repeat(i * 7)}`;
    const r = await c.call('ibp_ts_echo', req);
    if (r.rc === 0 && r.body.toString() === req) ok++;
  }
  c.close();
  t.equal(ok, 200, '200 TS echoes on one long connection (binary protocol)');

  const f = await callOnce(s.ip, s.port, 'ibp_ts_file', 'with files', { files: [{ name: 'a.txt', data: Buffer.from('AAA') }, { name: 'b.bin', data: Buffer.alloc(70_000, 7) }] });
  t.equal(f.rc, 0, f.message);
  t.same(f.files.map((x) => [x.name, x.data.length]).sort(), [['a.txt.echo', 3], ['b.bin.echo', 70_000]], 'files in and out');

  const kv = JSON.parse((await callOnce(s.ip, s.port, 'ibp_ts_kv', 'colour')).body.toString());
  t.match(kv, { node: 'ibas_test_node', app: 'ibp_ts_kv', key: 'colour', value: 'blue', timeout: '5' }, 'ctx.kv and ctx.config from the config space');
  const missing = await callOnce(s.ip, s.port, 'ibp_ts_kv', 'nope');
  t.equal(missing.rc, RC.APP_FAILED);
  t.equal(missing.appRc, 1, 'an app result code travels as appRc');

  const h = await post(s.ip, s.port, '/ibp/ibp_ts_echo', 'over http');
  t.equal(h.status, 200);
  t.equal(h.body, 'over http', 'the TS echo over the HTTP adapter');
  t.equal(h.headers['x-ibp-rc'], '0');

  // an app that throws: a typed answer, nobody dies
  const pids = () => s.slots().map((w) => w.pid).sort();
  const before = pids();
  const thrown = await callOnce(s.ip, s.port, 'fix', 'throw');
  t.equal(thrown.rc, RC.APP_THREW, 'throw → APP_THREW');
  t.match(thrown.message, /threw in main: .*asked to throw/);
  const hThrown = await post(s.ip, s.port, '/ibp/fix', 'throw');
  t.not(hThrown.status, 200, `over HTTP a throw is an error status (${hThrown.status})`);
  t.equal(hThrown.headers['x-ibp-result'], 'APP_THREW');
  t.same(pids(), before, 'no worker died for a throw');
  t.equal((await callOnce(s.ip, s.port, 'fix', 'after throw')).body.toString(), 'after throw');

  // an infinite loop: tier-1 alarm answers APP_TIMEOUT, that worker is replaced
  const looped = await callOnce(s.ip, s.port, 'fix', 'loop', { timeoutMs: 30_000 });
  t.equal(looped.rc, RC.APP_TIMEOUT, `loop → APP_TIMEOUT (${looped.message})`);
  await waitFor('the looping worker replaced', () => (s.slots().length === 2 && s.slots().every((w) => w.pid > 0) && pids().join() !== before.join() ? true : undefined), 20_000);
  t.match(s.log('monitor'), /signal\[SIGALRM\]|SIGALRM/, 'the manager saw the alarm');
  t.equal((await callOnce(s.ip, s.port, 'ibp_ts_echo', 'after loop')).body.toString(), 'after loop', 'the pool serves on');

  // unbounded allocation: only its worker dies (heap limit), the client gets the crash answer
  const before2 = pids();
  const alloc = await callOnce(s.ip, s.port, 'fixalloc', 'alloc', { timeoutMs: 60_000 });
  t.equal(alloc.rc, RC.APP_CRASH, `V8 ran out of heap: SIGABRT, the crash answer (${alloc.message})`);
  await waitFor('the allocating worker replaced', () => (pids().join() !== before2.join() && s.slots().every((w) => w.pid > 0) ? true : undefined), 20_000);
  const survivors = pids().filter((p) => before2.includes(p));
  t.equal(survivors.length, 1, 'the other worker lives on');
  t.equal((await callOnce(s.ip, s.port, 'ibp_ts_echo', 'after alloc')).body.toString(), 'after alloc', 'the pool serves on');

  // an async main: awaited in its app thread; a plain function returning a Promise is refused
  const slept = await callOnce(s.ip, s.port, 'asy', 'sleep:50');
  t.equal(slept.body.toString(), 'slept 50', `an async main is awaited (${slept.message})`);
  t.equal((await callOnce(s.ip, s.port, 'asy', 'kv:colour')).body.toString(), 'blue', 'with the node KV in its thread');
  const hAsync = await post(s.ip, s.port, '/ibp/asy', 'over http');
  t.match(hAsync.body, /^over http#\d+$/, 'an async app over HTTP');
  const before3 = pids();
  const aloop = await callOnce(s.ip, s.port, 'asy', 'loop', { timeoutMs: 30_000 });
  t.equal(aloop.rc, RC.APP_TIMEOUT, `an endless loop in an app thread meets the alarm too (${aloop.message})`);
  await waitFor('the worker replaced', () => (pids().join() !== before3.join() && s.slots().every((w) => w.pid > 0) ? true : undefined), 20_000);
  const asy = await callOnce(s.ip, s.port, 'fix', 'async');
  t.equal(asy.rc, RC.APP_THREW);
  t.match(asy.message, /declare it `async function`/);
  t.equal((await s.stop()).code, 0);
});

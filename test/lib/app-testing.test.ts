/**
 * The app harness of `ibp-ts/testing` (issue 15) runs an app with no cluster: in process (a JS
 * app, async main awaited; a .so through the host helper, with kv/config and its log) and in a
 * real worker process (`ibas --foreground --app`) over HTTP.
 */
import t from 'tap';
import { builtApp } from '../../lib/native/built-files.js';
import { openApp, runApp, runAppInWorker } from '../../lib/app/testing.js';
import { RC } from '../../lib/protocol/result-codes.js';

const FIX = builtApp('ibp_ts_fixture.mjs');

t.test('in process: a JS app', async (t) => {
  const r = await runApp(FIX, { request: 'hello' });
  t.equal(r.rc, RC.OK);
  t.equal(r.response.toString(), 'hello');
  t.match(r.log, [{ level: 'info', msg: /fixture init/ }], 'init ran and logged');
  const a = await runApp(FIX, { request: 'async' });
  t.equal(a.response.toString(), 'async done', 'an async main is awaited in process');
  const e = await runApp(FIX, { request: 'throw' });
  t.equal(e.rc, RC.APP_THREW);
  t.equal(e.error?.code, 'IBP_ERR_APP_THREW');
  const kv = await runApp(FIX, { request: 'kv:colour', kv: { colour: 'red' } });
  t.equal(kv.response.toString(), 'red');
  const rc = await runApp(FIX, { request: 'rc:9' });
  t.same([rc.rc, rc.appRc], [RC.APP_FAILED, 9]);
  const ahead = await runApp(FIX, { request: 'ahead' });
  t.same([ahead.sentAhead, ahead.response.toString()], [true, 'early']);
  const app = await openApp(FIX, { journal: 'J1', clientNode: 'CN', gtrid: 'CN.1.2.abc' });
  const c1 = JSON.parse((await app.call({ request: 'ctx' })).response.toString());
  const c2 = JSON.parse((await app.call({ request: 'ctx', app: 'other' })).response.toString());
  t.match(c1, { app: 'ibp_ts_fixture', journal: 'J1', gtrid: 'CN.1.2.abc', clientNode: 'CN', inits: 1 });
  t.match(c2, { app: 'other', inits: 1 }, 'openApp keeps one instance over calls');
  await app.close();
  const files = await runApp(builtApp('ibp_ts_file.mjs'), { request: 'f', files: [{ name: 'in.txt', data: 'IN' }] });
  t.same(files.files.map((f) => [f.name, f.data.toString()]), [['in.txt.echo', 'IN']], 'files in and out');
});

t.test('in process: a .so app with the new C API', async (t) => {
  const api = builtApp('ibp_test_api.so');
  t.equal((await runApp(api, { request: 'kv:k1', kv: { k1: 'v1' } })).response.toString(), 'v1');
  t.equal((await runApp(api, { request: 'config:desc', config: { desc: 'd!' } })).response.toString(), 'd!');
  const log = await runApp(api, { request: 'log' });
  t.same(log.log.map((l) => l.level), ['debug', 'info', 'warn', 'error']);
  t.equal((await runApp(builtApp('ibp_test_echo.so'), { request: 'c echo' })).response.toString(), 'c echo');
});

t.test('in a real worker, without a cluster', async (t) => {
  const r = await runAppInWorker(builtApp('ibp_ts_echo.mjs'), { request: 'via a worker' });
  t.equal(r.rc, RC.OK, r.error?.message);
  t.equal(r.response.toString(), 'via a worker');
  const e = await runAppInWorker(FIX, { request: 'throw' });
  t.equal(e.rc, RC.APP_THREW);
  t.equal(e.error?.code, 'APP_THREW');
});

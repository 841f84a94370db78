/**
 * Send-ahead in a real pool (issues 15/16): a JS app (test/fixtures/apps/ibp_ts_ahead.mjs) sends
 * its response ahead, then blocks its worker for a while and only then writes a marker file. The
 * client must have the complete answer (files + response) while the app still runs — the marker
 * is not there yet and the worker's slot still says WORKING — over the binary protocol and over
 * HTTP, and the same long connection serves the next call afterwards (no second answer for the
 * first). A failure after the send-ahead (non-zero result, throw) is logged, never answered; an
 * endless loop after it meets the tier-1 alarm, which then writes nothing: the client sees the
 * connection close, no timeout answer. The C side (rsp_send_ahead) answers once too.
 */
import t from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers, type IbasHome } from './helpers/server.js';
import { TestClient, callOnce } from './helpers/client.js';
import { workerLogs } from './helpers/raw-peer.js';

const BLOCK_MS = 1500;

function post(agent: http.Agent, s: IbasHome, app: string, body: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: s.ip, port: s.port, path: `/ibp/${app}`, method: 'POST', agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The worker running `app` still says WORKING (the app has not returned). */
function working(s: IbasHome, app: string): boolean {
  return s.slots().some((w) => w.state === 'WORKING' && w.app === app);
}

t.test('send-ahead: the answer leaves while the app goes on; binary, HTTP, failures after it', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    apps: [
      { app: 'ahead', bin: 'ibp_ts_ahead.mjs', timeout: 10 },
      { app: 'aheadloop', bin: 'ibp_ts_ahead.mjs', timeout: 1 },
      { app: 'api', bin: 'ibp_test_api.so' },
    ],
  });
  await s.start();
  await waitWorkers(s, 2);
  const marker = (n: string) => path.join(s.home, `marker-${n}`);

  // binary protocol, one long connection; the pre-answer is pipelined (held while the app runs)
  const c = await TestClient.connect(s.ip, s.port);
  const r = await c.call('ahead', `ahead:${BLOCK_MS}:${marker('bin')}`);
  const binEarly = !fs.existsSync(marker('bin'));
  const binWorking = working(s, 'ahead');
  t.same([r.rc, r.body.toString(), r.files.map((f) => [f.name, f.data.toString()])], [RC.OK, 'early', [['ahead.txt', 'file early']]], 'binary: the early answer, with its file');
  t.ok(binEarly, 'binary: the client has the answer before the app finished (no marker yet)');
  t.ok(binWorking, 'binary: the worker still runs the app when the answer is in');
  const r2 = await c.call('ahead', 'second call');
  t.same([r2.rc, r2.body.toString()], [RC.OK, 'second call'], 'binary: the same connection serves the next call (no second answer for the first)');
  t.ok(fs.existsSync(marker('bin')), 'the post-processing finished before the next call ran');
  await waitFor('the transaction line with sent_ahead', () => /transaction , .*app\[ahead\] .*rc\[0 OK\].*via\[binary\] sent_ahead\[1\]/.test(workerLogs(s)) || undefined);

  // a failure after the send-ahead: logged, not answered again
  const f = await c.call('ahead', `fail:200:${marker('fail')}`);
  t.same([f.rc, f.body.toString()], [RC.OK, 'early'], 'the client has the early success');
  const f2 = await c.call('ahead', 'after fail');
  t.equal(f2.body.toString(), 'after fail', 'then its next answer, nothing in between');
  const th = await c.call('ahead', `throw:200:${marker('throw')}`);
  t.same([th.rc, th.body.toString()], [RC.OK, 'early'], 'a throw after the send-ahead: the client has the early success');
  const th2 = await c.call('ahead', 'after throw');
  t.equal(th2.body.toString(), 'after throw', 'then its next answer');
  c.close();
  const logs = await waitFor('the failures after send-ahead in the log', () => {
    const l = workerLogs(s);
    return /transaction failed after its response was sent ahead .*rc\[1004\] app_rc\[3\]/.test(l) && /transaction failed after its response was sent ahead .*rc\[1011\]/.test(l) ? l : undefined;
  });
  t.match(logs, /app\[ahead\] .*rc\[1004 APP_FAILED\] app_rc\[3\].*sent_ahead\[1\]/, 'the transaction line keeps the final result');

  // HTTP keep-alive: the full response early, then the next request on the same socket
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const h = await post(agent, s, 'ahead', `ahead:${BLOCK_MS}:${marker('http')}`);
    const httpEarly = !fs.existsSync(marker('http'));
    const httpWorking = working(s, 'ahead');
    t.same([h.status, h.body, h.headers['x-ibp-rc']], [200, 'early', '0'], 'HTTP: the early response');
    t.ok(httpEarly, 'HTTP: the client has the response before the app finished (no marker yet)');
    t.ok(httpWorking, 'HTTP: the worker still runs the app when the response is in');
    const h2 = await post(agent, s, 'ahead', 'second over http');
    t.same([h2.status, h2.body, h2.reused], [200, 'second over http', true], 'HTTP: the same keep-alive socket serves the next request');
    t.ok(fs.existsSync(marker('http')), 'the HTTP post-processing finished');
  } finally {
    agent.destroy();
  }

  // an endless loop after the send-ahead: tier 1 ends the worker and writes nothing more
  const before = s.slots().map((w) => w.pid).sort().join();
  const lc = await TestClient.connect(s.ip, s.port);
  const l = await lc.call('aheadloop', `loop:0:${marker('loop')}`, { timeoutMs: 30_000 });
  t.same([l.rc, l.body.toString()], [RC.OK, 'early'], 'loop after send-ahead: the early answer');
  const rest = await lc.waitClosed(30_000);
  t.same(rest.map((p) => p.type), [], 'the alarm ended the worker without a second answer: the connection just closes');
  lc.close();
  await waitFor('the looping worker replaced', () => (s.slots().length === 2 && s.slots().every((w) => w.pid > 0) && s.slots().map((w) => w.pid).sort().join() !== before ? true : undefined), 20_000);

  // the C side: rsp_send_ahead, one answer (the hook fires after somain returns)
  const capi = await TestClient.connect(s.ip, s.port);
  const a1 = await capi.call('api', 'ahead');
  t.same([a1.rc, a1.body.toString()], [RC.OK, 'early'], 'C: the sent-ahead response');
  const a2 = await capi.call('api', 'echo me');
  t.same([a2.rc, a2.body.toString()], [RC.OK, 'echo me'], 'C: the next call on the same connection');
  capi.close();
  t.equal((await callOnce(s.ip, s.port, 'ahead', 'short')).body.toString(), 'short', 'the pool serves on');
  t.equal((await s.stop()).code, 0);
});

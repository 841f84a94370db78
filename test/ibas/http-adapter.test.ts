// The HTTP adapter on the transaction port: `POST /ibp/<app>` through real HTTP clients (Node's
// http with keep-alive, curl), status and load in headers, errors as statuses, oversized bodies
// refused — and the binary protocol still works on the same port.
import t from 'tap';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

function post(agent: http.Agent, ip: string, port: number, p: string, body: Buffer | string, method = 'POST', headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: p, method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('HTTP adapter', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, patch: (c) => { c.comm.max_frame_size = 64 * 1024; } });
  await s.start();
  await waitWorkers(s, 2);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  for (let i = 0; i < 50; i++) {
    const body = `http echo ${i} ${'x'.repeat(i * 10)}`;
    const r = await post(agent, s.ip, s.port, '/ibp/ibp_test_echo', body, 'POST', { 'X-Ibp-Journal': `H${i}` });
    if (r.status !== 200 || r.body.toString() !== body) t.fail(`echo ${i}: ${r.status} ${r.body.toString()}`);
  }
  t.pass('50 echoes over one keep-alive HTTP connection');
  const ok = await post(agent, s.ip, s.port, '/ibp/ibp_test_echo', 'headers');
  t.equal(ok.headers['x-ibp-rc'], '0');
  t.equal(ok.headers['x-ibp-result'], 'OK');
  t.match(ok.headers['x-ibp-load'], /^[12]\/2$/, 'load working/total in a header');
  t.match(s.log(0) + s.log(1), /journal\[H7\] app\[ibp_test_echo\].*via\[http\]/, 'HTTP transactions are in the transaction log');

  const cases: [string, string, string, number, RegExp][] = [
    ['unknown app', '/ibp/no_such_app', 'POST', 404, /not configured/],
    ['invalid app', '/ibp/ibp_test_invalid', 'POST', 403, /invalid/],
    ['missing .so', '/ibp/ibp_test_missing', 'POST', 500, /cannot load/],
    ['wrong path', '/echo', 'POST', 404, /POST \/ibp\/<app>/],
    ['wrong method', '/ibp/ibp_test_echo', 'GET', 405, /not allowed/],
  ];
  for (const [what, p, method, status, text] of cases) {
    const r = await post(agent, s.ip, s.port, p, '', method);
    t.equal(r.status, status, `${what}: ${status}`);
    t.match(r.body.toString(), text, `${what}: says why`);
  }
  const failed = await post(agent, s.ip, s.port, '/ibp/ibp_test_rc', '9:refused by app');
  t.equal(failed.status, 422, 'app returned non-zero: 422');
  t.equal(failed.headers['x-ibp-app-rc'], '9');
  t.equal(failed.body.toString(), 'refused by app', 'with the app\'s response as body');

  const big = await post(new http.Agent(), s.ip, s.port, '/ibp/ibp_test_echo', Buffer.alloc(100 * 1024, 1));
  t.equal(big.status, 413, 'a body over comm.max_frame_size: 413');

  const curl = spawnSync('curl', ['-sS', '-i', '--max-time', '10', '--data-binary', 'from curl', `http://${s.ip}:${s.port}/ibp/ibp_test_echo`], { encoding: 'utf8' });
  if (curl.error) t.skip('curl not installed');
  else {
    t.match(curl.stdout, /^HTTP\/1\.1 200 OK/, 'curl: 200');
    t.match(curl.stdout, /\r\n\r\nfrom curl$/, 'curl: the echo');
    t.match(curl.stdout, /x-ibp-load: \d+\/2/i);
  }

  const bad = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-X', 'POST', '-H', 'Content-Length: zzz', `http://${s.ip}:${s.port}/ibp/ibp_test_echo`], { encoding: 'utf8' });
  if (!bad.error) t.equal(bad.stdout, '400', 'a malformed HTTP request: 400, connection closed');

  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'binary too')).body.toString(), 'binary too', 'the binary protocol on the same port');
  t.equal(s.slots().length, 2, 'workers alive');
  t.equal((await s.stop()).code, 0);
});

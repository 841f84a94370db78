// comm.keepalive_max_requests (HTTP): the response to a keep-alive connection's last allowed request
// says `Connection: close` and the server closes it, so a client that sends without pause cannot
// hold a worker while other connections wait in the accept queue. A pool of one worker, one client
// sending back to back on keep-alive, a second client's request: it is served while the first
// client is still sending, not after it stopped.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { setupIbas, waitWorkers } from './helpers/server.js';

const CAP = 5;
const A_REQUESTS = 300;

/** Raw keep-alive requests on one socket until the server closes it: the responses' Connection headers. */
async function untilClosed(ip: string, port: number, limit: number): Promise<string[]> {
  const sock = net.connect({ host: ip, port });
  sock.setTimeout(15_000, () => sock.destroy(new Error('raw socket timeout')));
  const seen: string[] = [];
  let buf = '';
  let want = 0;
  const send = (): void => {
    want++;
    sock.write(`POST /ibp/ibp_test_echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi`);
  };
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', send);
    sock.on('error', reject);
    sock.on('close', () => resolve());
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\nhi'); end >= 0; end = buf.indexOf('\r\n\r\nhi')) {
        seen.push(/\r\nConnection: ([^\r]+)/i.exec(buf.slice(0, end))?.[1] ?? '?');
        buf = buf.slice(end + 6);
        if (want < limit) send();
      }
    });
  });
  return seen;
}

function post(agent: http.Agent, ip: string, port: number, body: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: '/ibp/ibp_test_echo', method: 'POST', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('HTTP keep-alive connections carry at most comm.keepalive_max_requests requests', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, patch: (c) => { c.comm.keepalive_max_requests = CAP; } });
  await s.start();
  await waitWorkers(s, 1);

  const seen = await untilClosed(s.ip, s.port, CAP + 10);
  t.same(seen, [...Array<string>(CAP - 1).fill('keep-alive'), 'close'], `${CAP} responses, the last says Connection: close, then the server closed`);

  // client A sends back to back on keep-alive (its agent reconnects after each close); client B
  // connects meanwhile: the worker reaches B's connection after at most CAP more of A's requests
  const agentA = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const agentB = new http.Agent({ keepAlive: false });
  t.teardown(() => {
    agentA.destroy();
    agentB.destroy();
  });
  let aDone = 0;
  let aClosed = 0;
  let aFailed = 0;
  const a = (async () => {
    for (let i = 0; i < A_REQUESTS; i++) {
      try {
        const r = await post(agentA, s.ip, s.port, `a${i}`);
        if (r.status !== 200) aFailed++;
        if (r.connection === 'close') aClosed++;
      } catch {
        aFailed++;
      }
      aDone++;
    }
  })();
  while (aDone < 20) await new Promise((r) => setImmediate(r));
  const bAt = aDone;
  const b = await post(agentB, s.ip, s.port, 'b');
  const aWhenB = aDone;
  await a;
  t.equal(b.status, 200, 'B was served');
  t.ok(aWhenB < A_REQUESTS, `B was served while A was still sending (A had ${aWhenB} of ${A_REQUESTS} done; B came at ${bAt})`);
  t.ok(aWhenB - bAt <= 3 * CAP, `B waited for at most a few of A's capped connections (${aWhenB - bAt} of A's requests)`);
  t.equal(aFailed, 0, 'no request of A failed: a Connection: close answer is a normal end');
  t.ok(aClosed >= Math.floor(A_REQUESTS / CAP) - 1, `A's connections were closed every ${CAP} requests (${aClosed} closes)`);
  t.equal((await s.stop()).code, 0);
});

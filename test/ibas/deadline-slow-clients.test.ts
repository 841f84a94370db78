// Slow clients cannot take a pool down (issue 9): against a STATIC pool of W = 2 workers, W
// clients of one kind — (a) binary, one byte at a time; (b) HTTP, headers sent and the body
// stalled; (c) silent, connected and sending nothing — hold both workers, and a valid call made
// meanwhile still completes: it is served once the deadline of its phase cuts a slow client
// (bytes never extend a deadline). Small deadlines in ibas.conf keep the file short.
import t from 'tap';
import { setupIbas, waitWorkers, type IbasHome } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { deadlineLine, RawPeer } from './helpers/raw-peer.js';
import { encodePackets } from '../../lib/protocol/codec.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';

const W = 2;
/** A valid pipelined transaction of about 200 bytes: dripped at 2 bytes/s it would take 100 s. */
const pipeline = encodePackets([
  { type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs: 0, clientNode: 'slow_client', app: 'ibp_test_echo', journal: 'J'.repeat(60) },
  { type: 'REQUEST', body: Buffer.alloc(120, 's') },
]);
const httpHead = 'POST /ibp/ibp_test_echo HTTP/1.1\r\nHost: slow\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n';

/** Every worker holds a connection: none is free to accept. */
const allHeld = (s: IbasHome) => {
  const live = s.slots();
  return live.length === W && live.every((w) => !['IDLE', 'LISTEN', 'STARTING'].includes(w.state));
};

t.test('W slow clients against a pool of W: a valid call is served after a slow one is cut', async (t) => {
  const s = await setupIbas(t, {
    maxCount: W,
    patch: (c) => Object.assign(c.comm, { header_timeout: 2, request_timeout: 3, keepalive_timeout: 1, send_timeout: 1 }),
  });
  await s.start();
  await waitWorkers(s, W);

  const kinds: { what: string; phase: string; start: (p: RawPeer) => void; answer?: (p: RawPeer) => void }[] = [
    { what: 'binary, one byte every 500 ms', phase: 'HEADER', start: (p) => p.drip(pipeline, 500) },
    {
      what: 'HTTP headers sent, body stalled', phase: 'REQUEST',
      start: (p) => p.write(`${httpHead}0123456789`),
      answer: (p) => t.match(p.bytes().toString('latin1'), /^HTTP\/1\.1 408 /, `${p.me}: the stalled HTTP client is answered 408`),
    },
    { what: 'silent connections', phase: 'HEADER', start: () => undefined },
  ];
  for (const k of kinds) {
    t.comment(`slow clients: ${k.what}`);
    const peers: RawPeer[] = [];
    for (let i = 0; i < W; i++) {
      const p = await RawPeer.connect(s.ip, s.port);
      peers.push(p);
      k.start(p);
    }
    t.teardown(() => peers.forEach((p) => p.close()));
    await waitFor('both workers to hold a slow client', () => allHeld(s), 5000);
    const body = `valid call beside ${k.what}`;
    const r = await callOnce(s.ip, s.port, 'ibp_test_echo', body, { timeoutMs: 15_000 }).catch((e: Error) => e);
    const doneAt = Date.now();
    if (r instanceof Error) {
      t.fail(`${k.what}: the valid call failed: ${r.message}`);
    } else {
      t.equal(r.rc, RC.OK, `${k.what}: the valid call succeeds`);
      t.equal(r.body.toString(), body, `${k.what}: with its echo`);
    }
    const cuts = peers.map((p) => p.closedAt).filter((x) => x > 0);
    t.ok(cuts.length > 0 && Math.min(...cuts) <= doneAt, `${k.what}: the call was served after a slow client was cut (${cuts.length} of ${W} cut by then)`);
    for (const p of peers) {
      await p.waitClosed(10_000).catch(() => undefined);
      t.ok(p.closed, `${k.what}: slow client ${p.me} is closed by the server`);
      const line = await deadlineLine(s, k.phase, p.me, 5000).catch(() => undefined);
      t.ok(line, `${k.what}: the worker log names phase[${k.phase}] and client[${p.me}]`);
      k.answer?.(p);
      p.close();
    }
    await waitFor('the pool free again', () => !allHeld(s), 5000);
  }
  t.equal(s.slots().length, W, 'the pool is still at size');
  t.equal((await s.stop()).code, 0);
});

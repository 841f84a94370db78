// Every phase of a connection has a deadline, and bytes do not extend it (issue 9):
//   HEADER     no complete request header within comm.header_timeout (binary frame or HTTP head)
//   REQUEST    no complete request within comm.request_timeout of the transaction's first byte
//   KEEPALIVE  idle between transactions longer than comm.keepalive_timeout
//   SEND       a response the peer does not drain within comm.send_timeout
// Each deadline closes the connection, writes one worker-log line naming phase[…] and the
// client[ip:port], and counts in the scoreboard's errors; a binary peer that still reads gets an
// ERROR packet IBP_ERR_PROTO_DEADLINE, an HTTP peer with no response in flight gets 408. The
// workers live on and serve.
import t from 'tap';
import { libc } from '../../lib/native/libc.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { deadlineLine, poolErrors, RawPeer, rcOf } from './helpers/raw-peer.js';
import { encodePacket, encodePackets, type Packet } from '../../lib/protocol/codec.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';

const DEADLINE = rcOf('IBP_ERR_PROTO_DEADLINE');
const pre = (journal = 'D'): Packet => ({ type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs: 0, clientNode: 'phase_client', app: 'ibp_test_echo', journal });
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, _In_ int *value, uint32_t len)');
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;

t.test('each deadline closes its phase, logs it and counts it', async (t) => {
  t.ok(DEADLINE, 'this build has IBP_ERR_PROTO_DEADLINE on the wire');
  const s = await setupIbas(t, {
    maxCount: 2,
    patch: (c) => Object.assign(c.comm, { header_timeout: 1, request_timeout: 2, keepalive_timeout: 1, send_timeout: 1 }),
  });
  await s.start();
  const workers = (await waitWorkers(s, 2)).map((w) => w.pid);

  /** One case: `run` drives the peer; then the close, the log line, the error count. */
  const phase = async (what: string, name: string, run: (p: RawPeer) => Promise<void> | void, check: (p: RawPeer) => void): Promise<void> => {
    const before = poolErrors(s);
    const p = await RawPeer.connect(s.ip, s.port);
    try {
      await run(p);
      await p.waitClosed(15_000).catch(() => undefined);
      t.ok(p.closed, `${what}: the server closed the connection`);
      const line = await deadlineLine(s, name, p.me, 5000).catch(() => undefined);
      t.ok(line, `${what}: one worker-log line names phase[${name}] and client[${p.me}]`) || t.comment(s.log(0).split('\n').slice(-4).join('\n'), s.log(1).split('\n').slice(-4).join('\n'));
      await waitFor('the error count to rise', () => poolErrors(s) > before, 5000).catch(() => undefined);
      // issue 9: every phase's expiry counts in the scoreboard's errors (KEEPALIVE too)
      t.ok(poolErrors(s) > before, `${what}: the scoreboard's error count rose (${before} → ${poolErrors(s)})`);
      check(p);
    } finally {
      p.close();
    }
  };
  const deadlineError = (what: string, p: RawPeer) => {
    const err = p.packets().find((x) => x.type === 'ERROR');
    t.ok(err, `${what}: an ERROR packet before the close`);
    if (err?.type === 'ERROR') t.equal(err.rc, DEADLINE, `${what}: rc IBP_ERR_PROTO_DEADLINE (${err.rc} ${err.message})`);
  };

  // HEADER, binary: 5 bytes of a pre-request, then one byte every 300 ms (60 s worth): cut at the deadline
  const head = encodePacket(pre('J'.repeat(60)));
  await phase('binary header dripped', 'HEADER', (p) => {
    p.write(head.subarray(0, 5));
    p.drip(Buffer.concat([head.subarray(5), head]), 300);
  }, (p) => deadlineError('binary header dripped', p));

  // HEADER, HTTP: the head dripped one byte every 300 ms
  await phase('HTTP head dripped', 'HEADER', (p) => {
    p.drip(Buffer.from(`POST /ibp/ibp_test_echo HTTP/1.1\r\nHost: drip\r\nX-Pad: ${'p'.repeat(200)}\r\nContent-Length: 1\r\n\r\nx`), 300);
  }, (p) => t.match(p.bytes().toString('latin1'), /^HTTP\/1\.1 408 /, 'HTTP head dripped: answered 408'));

  // REQUEST, binary: a complete pre-request, then the request's body one byte every 300 ms
  const req = encodePacket({ type: 'REQUEST', body: Buffer.alloc(200, 'r') });
  await phase('binary request dripped', 'REQUEST', (p) => {
    p.write(Buffer.concat([encodePacket(pre()), req.subarray(0, 14)]));
    p.drip(req.subarray(14), 300);
  }, (p) => {
    const got = p.packets();
    t.equal(got[0]?.type, 'PRE_ANSWER', 'binary request dripped: the pre-request was answered first');
    deadlineError('binary request dripped', p);
  });

  // REQUEST, HTTP: the head complete, the body stalled
  await phase('HTTP body stalled', 'REQUEST', (p) => {
    p.write('POST /ibp/ibp_test_echo HTTP/1.1\r\nHost: stall\r\nContent-Length: 500\r\n\r\nabc');
  }, (p) => t.match(p.bytes().toString('latin1'), /^HTTP\/1\.1 408 /, 'HTTP body stalled: answered 408'));

  // KEEPALIVE: one transaction, then silence
  await phase('idle after a transaction', 'KEEPALIVE', async (p) => {
    p.write(encodePackets([pre(), { type: 'REQUEST', body: Buffer.from('once') }]));
    await waitFor('the response', () => p.packets().some((x) => x.type === 'RESPONSE'), 10_000);
  }, (p) => {
    const r = p.packets().find((x) => x.type === 'RESPONSE');
    t.ok(r?.type === 'RESPONSE' && r.rc === RC.OK && r.body.toString() === 'once', 'idle after a transaction: the transaction was served');
    deadlineError('idle after a transaction', p);
  });

  // SEND: a 12 MB echo asked by a peer with a small receive buffer that never reads. The server
  // drops the connection (its kernel may still trickle what it had queued, so the peer's view of
  // the close is slow): the proof is the worker free again while the peer still has not read.
  const big = Buffer.alloc(12 * 1024 * 1024, 'b');
  const idleStates = ['IDLE', 'LISTEN'];
  {
    const what = 'response never drained';
    const before = poolErrors(s);
    const p = await RawPeer.connect(s.ip, s.port);
    try {
      const fd = (p.socket as unknown as { _handle: { fd: number } })._handle.fd;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, [4096], 4);
      p.socket.pause();
      p.write(encodePackets([pre(), { type: 'REQUEST', body: big }]));
      await waitFor('a worker to take the connection', () => s.slots().some((w) => !idleStates.includes(w.state)), 10_000);
      const line = await deadlineLine(s, 'SEND', p.me, 30_000).catch(() => undefined);
      t.ok(line, `${what}: one worker-log line names phase[SEND] and client[${p.me}]`);
      const freed = await waitFor('every worker free', () => s.slots().every((w) => idleStates.includes(w.state)), 5000).catch(() => false);
      t.ok(freed && !p.closed, `${what}: the worker let the connection go while the peer still does not read`);
      await waitFor('the error count to rise', () => poolErrors(s) > before, 5000).catch(() => undefined);
      t.ok(poolErrors(s) > before, `${what}: the scoreboard's error count rose (${before} → ${poolErrors(s)})`);
      t.ok(p.received < big.length, `${what}: the peer did not get the whole response (${p.received} of ${big.length} bytes)`);
    } finally {
      p.close();
    }
  }

  t.same((await waitWorkers(s, 2)).map((w) => w.pid), workers, 'the same two workers all along');
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'after')).body.toString(), 'after', 'and they serve on');
  t.equal((await s.stop()).code, 0);
});

// Malformed, truncated, out-of-order and oversized input on the binary protocol: the server
// answers an ERROR packet naming the problem, logs it, closes the connection — and the worker
// stays alive and serves the next client. Garbage that is not the binary protocol goes to the
// HTTP adapter, which answers 400 and closes. Every case asserts the answer or the close.
import t from 'tap';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { encodePacket, TX_FLAG } from '../../lib/protocol/codec.js';
import net from 'node:net';
import { encodeFrame, FRAME_TYPE, HEADER_SIZE } from '../../lib/protocol/frame.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';

function header(type: number, length: number, version = 1, flags = 0): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.write('IB', 0, 'latin1');
  h[2] = version;
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(length, 8);
  return h;
}

const pre = (fileCount = 0, flags = 0) => encodePacket({ type: 'PRE_REQUEST', flags, fileCount, timeoutMs: 0, clientNode: 'bad', app: 'ibp_test_echo', journal: 'M' });

t.test('bad input never takes a worker down', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, patch: (c) => { c.comm.max_frame_size = 8192; c.comm.idle_timeout = 1; c.comm.header_timeout = 1; c.security.compress_flag = 1; } });
  await s.start();
  const [worker] = await waitWorkers(s, 1);

  const cases: { what: string; bytes: Buffer; rc: number; log: RegExp; thenEnd?: boolean }[] = [
    { what: 'unsupported version', bytes: header(FRAME_TYPE.PRE_REQUEST, 0, 9), rc: RC.PROTO_VERSION, log: /protocol version 9 not supported/ },
    { what: 'unknown packet type', bytes: header(0x3c, 0), rc: RC.PROTO_FRAME, log: /unknown packet type 0x3c/ },
    { what: 'unknown frame flag', bytes: header(FRAME_TYPE.REQUEST, 0, 1, 0x40), rc: RC.PROTO_FRAME, log: /unknown frame flags/ },
    { what: 'oversized frame', bytes: header(FRAME_TYPE.REQUEST, 1_000_000), rc: RC.PROTO_TOO_LARGE, log: /frame of 1000000 bytes is over the limit of 8192/ },
    { what: 'request before pre-request', bytes: encodeFrame(FRAME_TYPE.REQUEST, Buffer.from('x')), rc: RC.PROTO_SEQUENCE, log: /unexpected REQUEST packet before a pre-request/ },
    { what: 'file not announced', bytes: Buffer.concat([pre(0), encodePacket({ type: 'PUSH_FILE', index: 0, name: 'f', data: Buffer.from('x') })]), rc: RC.PROTO_SEQUENCE, log: /unexpected PUSH_FILE/ },
    { what: 'garbage pre-request body', bytes: encodeFrame(FRAME_TYPE.PRE_REQUEST, Buffer.from([0, 0, 0])), rc: RC.PROTO_FRAME, log: /PRE_REQUEST body ends inside/ },
    { what: 'hostile file name', bytes: Buffer.concat([pre(1), encodeFrame(FRAME_TYPE.PUSH_FILE, Buffer.concat([Buffer.from([0, 0, 6]), Buffer.from('../etc'), Buffer.from([0, 0, 0, 0])]))]), rc: RC.PROTO_FRAME, log: /file name .{1,2}\.\.\/etc.{1,2} refused/ },
    { what: 'file over max_file_size', bytes: Buffer.concat([pre(1), encodeFrame(FRAME_TYPE.PUSH_FILE, Buffer.concat([Buffer.from([0, 0, 1]), Buffer.from('f'), Buffer.from([0, 0, 0x20, 0]), Buffer.alloc(0x2000)]))]), rc: RC.PROTO_TOO_LARGE, log: /over the limit/ },
    { what: 'server packet from a client', bytes: encodePacket({ type: 'RESPONSE', rc: 0, appRc: 0, load: { working: 0, total: 0 }, fileCount: 0, appUs: 0, message: '', body: Buffer.alloc(0) }), rc: RC.PROTO_SEQUENCE, log: /unexpected RESPONSE/ },
    { what: 'lz4 packet before any pre-answer', bytes: Buffer.concat([header(FRAME_TYPE.PRE_REQUEST, 6, 1, 1), Buffer.from([0, 0, 0, 40, 7, 7])]), rc: RC.PROTO_NOT_GRANTED, log: /compression was not granted/ },
    { what: 'lz4 request without COMPRESS granted', bytes: Buffer.concat([pre(0), header(FRAME_TYPE.REQUEST, 6, 1, 1), Buffer.from([0, 0, 0, 40, 7, 7])]), rc: RC.PROTO_NOT_GRANTED, log: /lz4-compressed REQUEST packet but compression was not granted/ },
    { what: 'bad lz4 body', bytes: Buffer.concat([encodePacket({ type: 'PRE_REQUEST', flags: TX_FLAG.COMPRESS, fileCount: 0, timeoutMs: 0, clientNode: 'bad', app: 'ibp_test_echo', journal: 'M' }), header(FRAME_TYPE.REQUEST, 6, 1, 1), Buffer.from([0, 0, 0, 40, 7, 7])]), rc: RC.PROTO_FRAME, log: /corrupt block|malformed lz4/ },
  ];
  for (const c of cases) {
    const cl = await TestClient.connect(s.ip, s.port);
    cl.write(c.bytes);
    const got = await cl.waitClosed(10_000);
    const err = got.find((p) => p.type === 'ERROR');
    t.ok(err, `${c.what}: an ERROR packet before the close`);
    if (err?.type === 'ERROR') t.equal(err.rc, c.rc, `${c.what}: rc ${c.rc}`);
    await waitFor(`${c.what} to be logged`, () => c.log.test(s.log(worker!.index)), 5000).catch(() => undefined);
    t.match(s.log(worker!.index), c.log, `${c.what}: logged`) || t.comment(s.log(worker!.index).split("\n").filter((l) => l.includes("protocol error")).slice(-2).join("\n"));
    t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', c.what)).body.toString(), c.what, `${c.what}: the worker serves on`);
  }

  // truncated: half a frame, then the client closes
  const tr = await TestClient.connect(s.ip, s.port);
  tr.write(pre().subarray(0, 9));
  tr.close();
  await waitFor('truncation logged', () => /connection ended inside a frame/.test(s.log(worker!.index)), 5000);
  t.pass('a truncated frame is logged as truncated');
  const tr2 = await TestClient.connect(s.ip, s.port);
  tr2.write(pre(0));
  tr2.write(encodePacket({ type: 'REQUEST', body: Buffer.alloc(100) }).subarray(0, 50));
  tr2.close();
  await waitFor('truncated body logged', () => /REQUEST body has \d+ of 100 bytes/.test(s.log(worker!.index)), 5000);
  t.pass('a truncated request body is logged');

  // stalled mid-frame: closed at the header deadline with PROTO_DEADLINE
  const st = await TestClient.connect(s.ip, s.port);
  st.write(pre().subarray(0, 5));
  const idle = await st.waitClosed(10_000);
  t.match(idle.find((p) => p.type === 'ERROR'), { rc: RC.PROTO_DEADLINE, message: /phase HEADER/ }, 'a stalled client is closed with PROTO_DEADLINE at its header deadline');
  await waitFor('deadline logged', () => /connection deadline , phase\[HEADER\] client\[[\d.]+:\d+\] ms\[1000\] , closed/.test(s.log(worker!.index)), 5000);
  t.pass('the deadline is logged with its phase and client');

  // non-IB first bytes go to the HTTP adapter, which answers garbage 400 and closes
  for (const garbage of ['\x00\x01garbage\r\n\r\n', 'GET\x00/ HTTP/1.1\r\n\r\n', 'POST /ibp/ibp_test_echo HTTP/1.1\r\nContent-Length: -5\r\n\r\n']) {
    const g = net.connect({ host: s.ip, port: s.port });
    let got = '';
    g.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const closed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      g.on('close', () => { clearTimeout(timer); resolve(true); });
      g.on('error', () => undefined);
    });
    g.write(Buffer.from(garbage, 'latin1'));
    const wasClosed = await closed;
    g.destroy();
    t.ok(wasClosed, `garbage ${JSON.stringify(garbage)}: the server closed the connection`);
    t.match(got, /^HTTP\/1\.1 400 /, `garbage ${JSON.stringify(garbage)}: answered 400 first`);
  }

  const alive = s.slots();
  t.equal(alive.length, 1, 'one worker');
  t.equal(alive[0]!.pid, worker!.pid, 'the same worker process all along');
  t.ok(alive[0]!.errors >= cases.length, `protocol errors counted on the slot (${alive[0]!.errors})`);
  t.notMatch(s.log('monitor'), /worker exited/, 'no worker exited');
  t.equal((await s.stop()).code, 0);
});

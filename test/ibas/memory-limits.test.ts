// Memory is bounded per transaction before it is allocated (issue 9):
//   - the attached files of one transaction total at most comm.max_files_bytes: a PUSH_FILE whose
//     declared size takes the total over is refused as soon as its frame header is in (its body
//     is never sent here, so an answer proves nothing waited for it) — IBP_ERR_PROTO_TOO_LARGE;
//   - an lz4 file's original size (first 4 bytes of its body) counts before it is decoded;
//   - an lz4 packet whose declared original size is over comm.max_frame_size is refused before
//     decoding — IBP_ERR_PROTO_TOO_LARGE;
//   - an lz4-flagged packet in a transaction whose PRE_ANSWER did not grant COMPRESS —
//     IBP_ERR_PROTO_NOT_GRANTED.
// Each: an ERROR packet, the connection closed, the worker alive and serving.
import t from 'tap';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce, TestClient } from './helpers/client.js';
import { RawPeer, rcOf } from './helpers/raw-peer.js';
import { encodePacket, TX_FLAG, type Packet } from '../../lib/protocol/codec.js';
import { encodeFrame, FRAME_FLAG, FRAME_TYPE, HEADER_SIZE } from '../../lib/protocol/frame.js';

const TOO_LARGE = rcOf('IBP_ERR_PROTO_TOO_LARGE');
const NOT_GRANTED = rcOf('IBP_ERR_PROTO_NOT_GRANTED');
const KB = 1024;
const MAX_FILES_BYTES = 1024 * KB;
const pre = (fileCount: number, flags = 0): Buffer => encodePacket({ type: 'PRE_REQUEST', flags, fileCount, timeoutMs: 0, clientNode: 'limits', app: 'ibp_test_echo', journal: 'L' } satisfies Packet);
const file = (index: number, data: Buffer): Buffer => encodePacket({ type: 'PUSH_FILE', index, name: `f${index}.bin`, data });

/** An lz4-flagged frame in the wire form of lib/codec/lz4.ts: uint32 original size, then a (tiny) block. */
function lz4Frame(type: number, declared: number): Buffer {
  const body = Buffer.from([0, 0, 0, 0, 0x10, 0x61]);
  body.writeUInt32BE(declared, 0);
  return encodeFrame(type as never, body, FRAME_FLAG.LZ4);
}

t.test('per-transaction memory bounds', async (t) => {
  const s = await setupIbas(t, {
    maxCount: 1,
    patch: (c) => {
      Object.assign(c.comm, { max_frame_size: 8 * 1024 * KB, max_file_size: 4 * 1024 * KB, max_files_bytes: MAX_FILES_BYTES, header_timeout: 5, request_timeout: 20 });
      c.security.compress_flag = 1;
    },
  });
  await s.start();
  const [worker] = await waitWorkers(s, 1);

  const within = await callOnce(s.ip, s.port, 'ibp_test_echo', 'files within the total', {
    files: [{ name: 'a.bin', data: Buffer.alloc(400 * KB, 1) }, { name: 'b.bin', data: Buffer.alloc(400 * KB, 2) }],
  });
  t.equal(within.rc, 0, 'two files of 400 KB (800 KB ≤ max_files_bytes 1 MiB) are served');

  const cases: { what: string; send: (p: RawPeer) => Promise<void> | void; rc: number | undefined; message: RegExp }[] = [
    {
      what: 'second file takes the total over max_files_bytes (its body never sent)',
      send: (p) => {
        const second = file(1, Buffer.alloc(600 * KB, 4));
        p.write(Buffer.concat([pre(3), file(0, Buffer.alloc(600 * KB, 3)), second.subarray(0, HEADER_SIZE + 100)]));
      },
      rc: TOO_LARGE, message: /max_files_bytes/,
    },
    {
      what: 'lz4 file whose original size takes the total over max_files_bytes',
      send: (p) => {
        p.write(pre(2, TX_FLAG.COMPRESS));
        p.write(file(0, Buffer.alloc(200 * KB, 5)));
        p.write(lz4Frame(FRAME_TYPE.PUSH_FILE, 900 * KB));
      },
      rc: TOO_LARGE, message: /max_files_bytes/,
    },
    {
      what: 'lz4 request declaring 100 MB (over max_frame_size 8 MiB)',
      send: (p) => p.write(Buffer.concat([pre(0, TX_FLAG.COMPRESS), lz4Frame(FRAME_TYPE.REQUEST, 100 * 1024 * KB)])),
      rc: TOO_LARGE, message: /104857600/,
    },
    {
      what: 'lz4 request when COMPRESS was not asked (so not granted)',
      send: (p) => p.write(Buffer.concat([pre(0), lz4Frame(FRAME_TYPE.REQUEST, 100)])),
      rc: NOT_GRANTED, message: /not granted/,
    },
    {
      what: 'lz4 file when COMPRESS was not asked',
      send: (p) => {
        p.write(Buffer.concat([pre(1), lz4Frame(FRAME_TYPE.PUSH_FILE, 100)]));
      },
      rc: NOT_GRANTED, message: /not granted/,
    },
  ];
  for (const c of cases) {
    const p = await RawPeer.connect(s.ip, s.port);
    try {
      await c.send(p);
      await p.waitClosed(10_000).catch(() => undefined);
      t.ok(p.closed, `${c.what}: the connection is closed`);
      const err = p.packets().find((x) => x.type === 'ERROR');
      t.ok(err, `${c.what}: an ERROR packet`);
      if (err?.type === 'ERROR') {
        t.equal(err.rc, c.rc, `${c.what}: rc ${c.rc}`);
        t.match(err.message, c.message, `${c.what}: the message says why (${err.message})`);
      }
    } finally {
      p.close();
    }
    t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'next')).body.toString(), 'next', `${c.what}: the worker serves on`);
  }
  // a granted compressed call still works end to end
  const c = await TestClient.connect(s.ip, s.port);
  const r = await c.call('ibp_test_echo', Buffer.alloc(64 * KB, 'c'), { flags: TX_FLAG.COMPRESS, compressMin: 1, waitPre: true });
  c.close();
  t.ok(r.rc === 0 && r.body.equals(Buffer.alloc(64 * KB, 'c')) && (r.granted & TX_FLAG.COMPRESS) !== 0, 'a compressed call with COMPRESS granted is served');
  t.equal(s.slots()[0]?.pid, worker!.pid, 'the same worker all along');
  t.equal((await s.stop()).code, 0);
});

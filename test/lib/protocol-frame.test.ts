import t from 'tap';
import fc from 'fast-check';
import { isIbpError } from '../../lib/errors.js';
import {
  FRAME_TYPE, FrameReader, HEADER_SIZE, decodeHeader, encodeFrame, looksBinary, type FrameType,
} from '../../lib/protocol/frame.js';

const TYPES = Object.values(FRAME_TYPE) as FrameType[];
const frameArb = fc.record({
  type: fc.constantFrom(...TYPES),
  flags: fc.constantFrom(0, 1),
  body: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
});

/** Split a buffer into pieces at the given cut points. */
function cut(buf: Buffer, points: number[]): Buffer[] {
  const ps = [...new Set(points.map((p) => p % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of ps) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

t.test('frames survive any fragmentation of the stream', async (t) => {
  fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, points) => {
    const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.body, f.flags)));
    const reader = new FrameReader(1024);
    const got = cut(stream, points).flatMap((c) => reader.push(c));
    reader.end();
    if (got.length !== frames.length) return false;
    return got.every((g, i) => g.type === frames[i]!.type && g.flags === frames[i]!.flags && g.body.equals(frames[i]!.body));
  }), { numRuns: 400 });
  t.pass('fragmented streams reassemble');
});

t.test('byte-by-byte feeding yields the same frames', async (t) => {
  const f1 = encodeFrame(FRAME_TYPE.REQUEST, Buffer.from('hello'));
  const f2 = encodeFrame(FRAME_TYPE.KEEPALIVE, Buffer.alloc(0));
  const all = Buffer.concat([f1, f2]);
  const r = new FrameReader();
  const frames = [];
  for (let i = 0; i < all.length; i++) frames.push(...r.push(all.subarray(i, i + 1)));
  t.equal(frames.length, 2);
  t.equal(frames[0]!.body.toString(), 'hello');
  t.equal(frames[1]!.type, FRAME_TYPE.KEEPALIVE);
  t.ok(r.idle);
});

t.test('malformed headers are rejected with IBP_ERR_PROTO_*', async (t) => {
  const good = encodeFrame(FRAME_TYPE.REQUEST, Buffer.from('x'));
  const cases: [string, (b: Buffer) => void, string][] = [
    ['bad magic', (b) => { b[0] = 0x47; }, 'IBP_ERR_PROTO_FRAME'],
    ['bad version', (b) => { b[2] = 9; }, 'IBP_ERR_PROTO_VERSION'],
    ['unknown type', (b) => { b[3] = 0x3c; }, 'IBP_ERR_PROTO_FRAME'],
    ['unknown flag', (b) => { b[4] = 0x80; }, 'IBP_ERR_PROTO_FRAME'],
    ['reserved byte', (b) => { b[6] = 1; }, 'IBP_ERR_PROTO_FRAME'],
    ['ENCRYPTED without SEALED', (b) => { b[4] = 0x04; }, 'IBP_ERR_PROTO_FRAME'],
    ['ENCRYPTED and LZ4 without SEALED', (b) => { b[4] = 0x05; }, 'IBP_ERR_PROTO_FRAME'],
    ['oversized', (b) => { b.writeUInt32BE(2000, 8); }, 'IBP_ERR_PROTO_TOO_LARGE'],
  ];
  for (const [what, mutate, code] of cases) {
    const b = Buffer.from(good);
    mutate(b);
    const r = new FrameReader(1000);
    t.throws(() => r.push(b), { code }, what);
    t.throws(() => r.push(good), { code }, `${what}: the reader stays poisoned`);
  }
});

t.test('an oversized header is refused before its body is buffered', async (t) => {
  const h = Buffer.alloc(HEADER_SIZE);
  encodeFrame(FRAME_TYPE.REQUEST, Buffer.alloc(0)).copy(h);
  h.writeUInt32BE(0xffffffff, 8);
  const r = new FrameReader(1 << 20);
  t.throws(() => r.push(h), { code: 'IBP_ERR_PROTO_TOO_LARGE' });
  t.equal(r.buffered, 0);
});

t.test('random garbage never crashes the reader: frames or an IbpError', async (t) => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
    const r = new FrameReader(4096);
    try {
      for (const c of chunks) r.push(Buffer.from(c));
      r.end();
    } catch (e) {
      return isIbpError(e) && e.code.startsWith('IBP_ERR_PROTO_');
    }
    return true;
  }), { numRuns: 500 });
  t.pass();
});

t.test('a stream cut inside a frame is truncated', async (t) => {
  fc.assert(fc.property(frameArb, fc.nat(), (f, n) => {
    const full = encodeFrame(f.type, f.body, f.flags);
    const cutAt = 1 + (n % (full.length - 1));
    const r = new FrameReader(1024);
    r.push(full.subarray(0, cutAt));
    try {
      r.end();
      return false;
    } catch (e) {
      return isIbpError(e, 'IBP_ERR_PROTO_TRUNCATED');
    }
  }), { numRuns: 200 });
  t.pass();
});

t.test('decodeHeader and sniffing', async (t) => {
  const f = encodeFrame(FRAME_TYPE.PRE_REQUEST, Buffer.alloc(7));
  t.same(decodeHeader(f, 100), { type: FRAME_TYPE.PRE_REQUEST, flags: 0, length: 7 });
  t.ok(looksBinary(f));
  t.ok(looksBinary(f.subarray(0, 1)), 'one byte "I" is still maybe binary');
  t.notOk(looksBinary(Buffer.from('POST /ibp/x HTTP/1.1\r\n')));
  t.notOk(looksBinary(Buffer.from('IX')));
});

t.test('streaming reader: each header is judged before its body is buffered', async (t) => {
  const r = new FrameReader(1024);
  const seen: string[] = [];
  const a = encodeFrame(FRAME_TYPE.PRE_REQUEST, Buffer.from('abc'));
  const b = encodeFrame(FRAME_TYPE.PUSH_FILE, Buffer.alloc(500), 1);
  r.feed(Buffer.concat([a, b.subarray(0, HEADER_SIZE)]));
  const onHeader = (h: { type: number; flags: number; length: number }): void => {
    seen.push(`${h.type}:${h.flags}:${h.length}`);
    if (h.flags === 1) throw new Error('refused');
  };
  const first = r.next(onHeader);
  t.equal(first?.type, FRAME_TYPE.PRE_REQUEST, 'the first frame comes out before the second header is judged');
  t.same(seen, ['1:0:3']);
  t.throws(() => r.next(onHeader), /refused/, 'the hook refuses the second frame from its header alone');
  t.same(seen, ['1:0:3', '3:1:500']);
  t.throws(() => r.feed(Buffer.alloc(1)), /refused/, 'the reader stays poisoned');
});

import t from 'tap';
import fc from 'fast-check';
import { isIbpError } from '../../lib/errors.js';
import { FRAME_FLAG, FrameReader, encodeFrame, FRAME_TYPE, limitsOf } from '../../lib/protocol/frame.js';
import { decodePacket, encodePacket, encodePackets, TX_FLAG, type Packet } from '../../lib/protocol/codec.js';
import { RC, errorCodeOf, errorOfResult, resultName, resultOf } from '../../lib/protocol/result-codes.js';
import { COMM_STATUS, CommStatusTracker, isSuspicious } from '../../lib/protocol/comm-status.js';
import { IbpError, ERRORS } from '../../lib/errors.js';

const limits = limitsOf({ maxFrame: 64 * 1024, maxFile: 8 * 1024, maxFiles: 16 });
const name = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}$/);
const fileName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_-]{0,30}(\.[a-z]{1,4})?$/);
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const load = fc.record({ working: fc.integer({ min: 0, max: 65535 }), total: fc.integer({ min: 0, max: 65535 }) });
const text = fc.string({ maxLength: 200 });

const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ type: fc.constant('PRE_REQUEST' as const), flags: fc.integer({ min: 0, max: 15 }), fileCount: fc.integer({ min: 0, max: 16 }), timeoutMs: fc.nat(), clientNode: fc.oneof(fc.constant(''), name), app: name, journal: fc.oneof(fc.constant(''), name), gtrid: fc.oneof(fc.constant(''), name) })
    .map((p) => ({ ...p, flags: p.gtrid ? p.flags | TX_FLAG.GTRID : p.flags })),
  fc.record({ type: fc.constant('PRE_ANSWER' as const), rc: fc.integer({ min: -2147483648, max: 2147483647 }), load, granted: fc.integer({ min: 0, max: 15 }), message: text }),
  fc.record({ type: fc.constantFrom('PUSH_FILE' as const, 'PULL_FILE' as const), index: fc.integer({ min: 0, max: 15 }), name: fileName, data: bytes(8 * 1024) }),
  fc.record({ type: fc.constant('REQUEST' as const), body: bytes(4000) }),
  fc.record({ type: fc.constant('RESPONSE' as const), rc: fc.integer(), appRc: fc.integer(), load, fileCount: fc.integer({ min: 0, max: 16 }), appUs: fc.nat(), message: text, body: bytes(4000) }),
  fc.constant({ type: 'KEEPALIVE' as const }),
  fc.record({ type: fc.constant('KEEPALIVE_ACK' as const), load }),
  fc.record({ type: fc.constant('TX_CONTROL' as const), op: fc.constantFrom('PREPARE' as const, 'COMMIT' as const, 'ROLLBACK' as const), journal: name, gtrid: fc.oneof(fc.constant(''), name) }),
  fc.record({ type: fc.constant('TX_CONTROL_ANSWER' as const), rc: fc.integer(), load, message: text, appRc: fc.integer(), body: bytes(2000) }),
  fc.record({ type: fc.constant('ERROR' as const), rc: fc.integer(), message: text }),
);

function roundTrip(wire: Buffer): Packet[] {
  const r = new FrameReader(limits.maxFrame);
  const frames = r.push(wire);
  r.end();
  return frames.map((f) => decodePacket(f, limits));
}

t.test('every packet survives encode → frame reader → decode', async (t) => {
  fc.assert(fc.property(fc.array(packetArb, { minLength: 1, maxLength: 6 }), fc.boolean(), (packets, compress) => {
    const wire = encodePackets(packets, compress ? { compressMin: 16 } : {});
    const back = roundTrip(wire);
    t.same(back, packets);
    return back.length === packets.length;
  }), { numRuns: 300 });
});

t.test('compression: flag set only when it pays, and round trips', async (t) => {
  const body = Buffer.from('IBP '.repeat(2000));
  const wire = encodePacket({ type: 'REQUEST', body }, { compressMin: 100 });
  t.equal(wire[4], FRAME_FLAG.LZ4);
  t.ok(wire.length < body.length / 5);
  t.ok((roundTrip(wire)[0] as { body: Buffer }).body.equals(body));
  const small = encodePacket({ type: 'REQUEST', body: Buffer.from('tiny') }, { compressMin: 100 });
  t.equal(small[4], 0, 'below the threshold: plain');
});

t.test('a compressed body that inflates past maxFrame is refused', async (t) => {
  const big = encodePacket({ type: 'REQUEST', body: Buffer.alloc(200_000) }, { compressMin: 1 });
  t.ok(big.length < 64 * 1024, 'fits the frame limit compressed');
  t.throws(() => roundTrip(big), { code: 'IBP_ERR_PROTO_TOO_LARGE' });
});

t.test('hostile bodies: truncated fields, trailing bytes, bad names, bad sizes', async (t) => {
  const pre = encodePacket({ type: 'PRE_REQUEST', flags: 0, fileCount: 1, timeoutMs: 0, clientNode: 'c', app: 'ibp_test_echo', journal: 'j1' });
  const body = pre.subarray(12);
  const cases: [string, Buffer, number, string][] = [
    ['truncated pre-request', body.subarray(0, body.length - 1), FRAME_TYPE.PRE_REQUEST, 'IBP_ERR_PROTO_FRAME'],
    ['trailing bytes', Buffer.concat([body, Buffer.from([0])]), FRAME_TYPE.PRE_REQUEST, 'IBP_ERR_PROTO_FRAME'],
    ['too many files', (() => { const b = Buffer.from(body); b.writeUInt16BE(999, 2); return b; })(), FRAME_TYPE.PRE_REQUEST, 'IBP_ERR_PROTO_TOO_LARGE'],
    ['empty app', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), FRAME_TYPE.PRE_REQUEST, 'IBP_ERR_PROTO_FRAME'],
    ['file with a path', Buffer.concat([Buffer.from([0, 0, 5]), Buffer.from('../ab'), Buffer.from([0, 0, 0, 0])]), FRAME_TYPE.PUSH_FILE, 'IBP_ERR_PROTO_FRAME'],
    ['file over maxFile', Buffer.concat([Buffer.from([0, 0, 1]), Buffer.from('a'), Buffer.from([0, 1, 0, 0])]), FRAME_TYPE.PUSH_FILE, 'IBP_ERR_PROTO_TOO_LARGE'],
    ['file size beyond body', Buffer.concat([Buffer.from([0, 0, 1]), Buffer.from('a'), Buffer.from([0, 0, 0, 9]), Buffer.from('abc')]), FRAME_TYPE.PUSH_FILE, 'IBP_ERR_PROTO_FRAME'],
    ['bad utf-8 name', Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0x28, 0])]), FRAME_TYPE.PRE_REQUEST, 'IBP_ERR_PROTO_FRAME'],
    ['unknown tx op', Buffer.from([9, 0]), FRAME_TYPE.TX_CONTROL, 'IBP_ERR_PROTO_FRAME'],
    ['bad lz4', Buffer.from([0, 0, 0, 50, 1, 2, 3]), -1, 'IBP_ERR_PROTO_FRAME'],
  ];
  for (const [what, b, type, code] of cases) {
    const frame = type === -1 ? { type: FRAME_TYPE.REQUEST, flags: FRAME_FLAG.LZ4, body: b } : { type: type as 1, flags: 0, body: b };
    t.throws(() => decodePacket(frame, limits), { code }, what);
  }
});

t.test('random bodies for every type decode or fail with IBP_ERR_PROTO_*', async (t) => {
  const types = Object.values(FRAME_TYPE);
  fc.assert(fc.property(fc.constantFrom(...types), fc.constantFrom(0, 1), bytes(300), (type, flags, body) => {
    try {
      decodePacket({ type, flags, body }, limits);
      return true;
    } catch (e) {
      return isIbpError(e) && e.code.startsWith('IBP_ERR_PROTO_');
    }
  }), { numRuns: 2000 });
  t.pass();
});

t.test('encoder refuses what the decoder would refuse', async (t) => {
  t.throws(() => encodePacket({ type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs: 0, clientNode: '', app: '', journal: '' }), { code: 'IBP_ERR_PROTO_FRAME' });
  t.throws(() => encodePacket({ type: 'PUSH_FILE', index: 0, name: 'a/b', data: Buffer.alloc(0) }), { code: 'IBP_ERR_PROTO_FRAME' });
  t.throws(() => encodePacket({ type: 'PRE_REQUEST', flags: 0, fileCount: 70000, timeoutMs: 0, clientNode: '', app: 'a', journal: '' }), { code: 'IBP_ERR_PROTO_FRAME' });
  t.throws(() => encodePacket({ type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs: 0, clientNode: 'x'.repeat(65), app: 'a', journal: '' }), { code: 'IBP_ERR_PROTO_FRAME' });
  t.equal(TX_FLAG.COMPRESS, 2);
});

t.test('result codes map both ways onto the error table', async (t) => {
  for (const [key, rc] of Object.entries(RC)) {
    t.equal(resultName(rc), key);
    if (rc === RC.OK) {
      t.equal(errorCodeOf(rc), undefined);
      continue;
    }
    const code = errorCodeOf(rc)!;
    t.ok(code in ERRORS, `${key} → ${code} exists`);
    t.equal(resultOf(new IbpError(code)), rc, `${code} → ${key}`);
  }
  t.equal(resultOf(new Error('x')), RC.POOL_INTERNAL);
  const e = errorOfResult(RC.APP_UNKNOWN, 'app nope is not configured on this node');
  t.equal(e.code, 'IBP_ERR_APP_UNKNOWN');
  t.equal(e.message, 'app nope is not configured on this node');
  t.equal(errorOfResult(4711, 'x').code, 'IBP_ERR_POOL_INTERNAL');
  t.equal(resultName(4711), 'rc 4711');
});

t.test('communication status', async (t) => {
  const s = new CommStatusTracker();
  t.equal(s.status, COMM_STATUS.BEFORE_SEND);
  t.notOk(s.suspicious);
  s.sending();
  t.equal(s.status, COMM_STATUS.ON_SENDING);
  s.sent();
  t.equal(s.status, COMM_STATUS.AFTER_SEND);
  s.sending();
  t.equal(s.status, COMM_STATUS.AFTER_SEND, 'sending() never goes back');
  t.ok(isSuspicious(COMM_STATUS.ON_SENDING));
  s.reset();
  t.equal(s.status, COMM_STATUS.BEFORE_SEND);
});

t.test('encodeFrame is what encodePacket writes for a REQUEST', async (t) => {
  const b = Buffer.from('abc');
  t.ok(encodeFrame(FRAME_TYPE.REQUEST, b).equals(encodePacket({ type: 'REQUEST', body: b })));
});

import t from 'tap';
import fc from 'fast-check';
import { lz4Compress, lz4Decompress } from '../../lib/codec/lz4.js';
import { acceptsLz4, decodeJsonBody, encodeJsonBody } from '../../lib/codec/json-body.js';
import { isIbpError } from '../../lib/errors.js';

t.test('lz4 round trip of arbitrary bytes', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (arr) => {
    const raw = Buffer.from(arr);
    const packed = lz4Compress(raw);
    if (packed === undefined) return true; // incompressible: sent as it is
    return lz4Decompress(packed, raw.length).equals(raw);
  }), { numRuns: 300 });
  const text = Buffer.from('ECIF '.repeat(1000));
  const packed = lz4Compress(text)!;
  t.ok(packed.length < text.length / 10, 'repetitive text compresses');
  t.ok(lz4Decompress(packed, 1e6).equals(text));
});

t.test('hostile lz4 bodies are errors, never crashes', async (t) => {
  const packed = lz4Compress(Buffer.from('x'.repeat(4000)))!;
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['header only', packed.subarray(0, 4)],
    ['truncated', packed.subarray(0, packed.length - 3)],
    ['garbage block', Buffer.concat([Buffer.from([0, 0, 0, 64]), Buffer.from('garbage-garbage-garbage-garbage')])],
  ];
  for (const [name, body] of cases) {
    t.throws(() => lz4Decompress(body, 1e6), { code: 'IBP_ERR_CODEC_LZ4' }, name);
  }
  t.throws(() => lz4Decompress(packed, 100), { code: 'IBP_ERR_CODEC_TOO_LARGE' }, 'announced size over the limit');
  fc.assert(fc.property(fc.uint8Array({ minLength: 5, maxLength: 200 }), (arr) => {
    try {
      lz4Decompress(Buffer.from(arr), 1 << 16);
    } catch (e) {
      return isIbpError(e);
    }
    return true;
  }), { numRuns: 500 });
});

t.test('JSON bodies compress at the threshold and only when the peer accepts lz4', async (t) => {
  const value = { nodes: Array.from({ length: 50 }, (_, i) => ({ node: `N${i}`, hosts: [] })) };
  const size = Buffer.byteLength(JSON.stringify(value));
  t.equal(encodeJsonBody(value, { minCompressSize: size, peerAcceptsLz4: true }).encoding, 'lz4', 'at the threshold');
  t.equal(encodeJsonBody(value, { minCompressSize: size + 1, peerAcceptsLz4: true }).encoding, undefined, 'below the threshold');
  t.equal(encodeJsonBody(value, { minCompressSize: 0, peerAcceptsLz4: false }).encoding, undefined, 'peer without lz4');
  const enc = encodeJsonBody(value, { minCompressSize: 10, peerAcceptsLz4: true });
  t.same(decodeJsonBody(enc.body, enc.encoding, 1e6), value);
  t.same(decodeJsonBody(Buffer.from('{"a":1}'), undefined, 100), { a: 1 });
});

t.test('JSON body errors', async (t) => {
  t.throws(() => decodeJsonBody(Buffer.from('{"a":'), undefined, 100), { code: 'IBP_ERR_CODEC_JSON' });
  t.throws(() => decodeJsonBody(Buffer.from('{"__proto__":{"x":1}}'), undefined, 100), { code: 'IBP_ERR_CODEC_JSON' }, 'prototype poisoning');
  t.throws(() => decodeJsonBody(Buffer.alloc(200, 32), undefined, 100), { code: 'IBP_ERR_CODEC_TOO_LARGE' });
  t.throws(() => decodeJsonBody(Buffer.from('{}'), 'gzip', 100), { code: 'IBP_ERR_CODEC_LZ4' }, 'unknown encoding');
  t.ok(acceptsLz4('gzip, lz4;q=1'));
  t.notOk(acceptsLz4('gzip'));
  t.notOk(acceptsLz4(undefined));
});

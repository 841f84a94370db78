import t from 'tap';
import fc from 'fast-check';
import { DecodeBudget, lz4BlockOutputSize, lz4Compress, lz4Decompress } from '../../lib/codec/lz4.js';
import { acceptsLz4, decodeJsonBody, encodeJsonBody } from '../../lib/codec/json-body.js';
import { isIbpError } from '../../lib/errors.js';
import { lz4Bomb } from '../helpers/lz4-bomb.js';

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

const bomb = lz4Bomb;

t.test('the size walk of an lz4 block equals what it decodes to', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 1, max: 20 }), (arr, rep) => {
    const raw = Buffer.concat(Array.from({ length: rep }, () => Buffer.from(arr)));
    const packed = lz4Compress(raw);
    if (packed === undefined) return true;
    return lz4BlockOutputSize(packed.subarray(4), raw.length) === raw.length;
  }), { numRuns: 300 });
  const honest = bomb(1_000_000, 1_000_000);
  t.equal(lz4BlockOutputSize(honest.subarray(4), 1e9), 1_000_000, 'the bomb builder is exact');
  t.equal(lz4Decompress(honest, 1_000_000).length, 1_000_000, 'an honest body of that size decodes');
});

t.test('a body that expands past its declared size is refused before decoding (413)', async (t) => {
  t.throws(() => lz4Decompress(bomb(1000, 50_000_000), 1 << 20), { code: 'IBP_ERR_CODEC_EXPANDS' }, 'expands past the declared size');
  t.throws(() => lz4Decompress(bomb(1 << 21, 1 << 21), 1 << 20), { code: 'IBP_ERR_CODEC_TOO_LARGE' }, 'declares more than the limit');
  t.throws(() => lz4Decompress(bomb(5000, 4000), 1 << 20), { code: 'IBP_ERR_CODEC_LZ4' }, 'expands to less than declared');
  const b = new DecodeBudget(100);
  t.ok(b.take(60));
  t.notOk(b.take(50), 'over the budget');
  b.give(60);
  t.ok(b.take(100));
  t.equal(b.held, 100);
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

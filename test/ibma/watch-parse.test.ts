/**
 * The watch's answer check (ibma/subscribe.ts parseBundle) and its backoff, in process: whatever
 * bytes arrive, the result is a valid bundle of this node or IBP_ERR_REG_ANSWER, never another
 * exception; the backoff grows from min to max with bounded jitter and resets.
 */
import fc from 'fast-check';
import t from 'tap';
import { isIbpError } from '../../lib/errors.js';
import { encodeJsonBody } from '../../lib/codec/json-body.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { Backoff, parseBundle } from '../../ibma/subscribe.js';

const good: NodeBundle = {
  epoch: 'E',
  version: 3,
  this_node: 'N1',
  nodes: [{ node: 'N1', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 1000 }], kvs: { a: 'b'.repeat(200) } }],
  apps: [{ app: 'A1', desc: '', bin: 'a1.so', timeout: 1, timeout2: 0, invalid: 0, server_node: 'N1', sha256: '', size: 0 }],
};
const headers = (h: Record<string, string> = {}): Headers => new Headers({ 'x-ibp-index': '3', 'x-ibp-epoch': 'E', ...h });
const MAX = 1 << 20;

t.test('a good answer, plain or lz4, is accepted', async (t) => {
  t.same(parseBundle(Buffer.from(JSON.stringify(good)), headers(), 'N1', MAX), good);
  const enc = encodeJsonBody(good, { minCompressSize: 1, peerAcceptsLz4: true });
  t.equal(enc.encoding, 'lz4');
  t.same(parseBundle(enc.body, headers({ 'content-encoding': 'lz4' }), 'N1', MAX), good);
  t.same(parseBundle(Buffer.from(JSON.stringify(good)), new Headers(), 'N1', MAX), good, 'headers are optional');
});

t.test('every kind of bad answer is IBP_ERR_REG_ANSWER naming the problem', async (t) => {
  const body = Buffer.from(JSON.stringify(good));
  const cases: [string, Buffer, Headers, string, RegExp][] = [
    ['another node', body, headers(), 'N2', /bundle of node N1/],
    ['index header', body, headers({ 'x-ibp-index': '4' }), 'N1', /X-Ibp-Index 4/],
    ['epoch header', body, headers({ 'x-ibp-epoch': 'F' }), 'N1', /X-Ibp-Epoch F/],
    ['node missing', Buffer.from(JSON.stringify({ ...good, nodes: [] })), headers(), 'N1', /node N1 itself is missing/],
    ['bad host ip', Buffer.from(JSON.stringify({ ...good, nodes: [{ ...good.nodes[0], hosts: [{ ip: 'x', port: 1 }] }] })), headers(), 'N1', /\/nodes\/0\/hosts\/0\/ip/],
    ['path in bin', Buffer.from(JSON.stringify({ ...good, apps: [{ ...good.apps[0], bin: '../../etc/passwd.so' }] })), headers(), 'N1', /\/apps\/0\/bin/],
    ['unknown key', Buffer.from(JSON.stringify({ ...good, extra: 1 })), headers(), 'N1', /extra/],
    ['proto', Buffer.from('{"__proto__":{"x":1}}'), headers(), 'N1', /rejected/],
    ['cut JSON', body.subarray(0, 40), headers(), 'N1', /JSON/],
    ['lz4 garbage', Buffer.from([0, 0, 0, 50, 1, 2, 3]), headers({ 'content-encoding': 'lz4' }), 'N1', /lz4/],
    ['lz4 bomb', Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]), headers({ 'content-encoding': 'lz4' }), 'N1', /over the limit/],
    ['unknown encoding', body, headers({ 'content-encoding': 'br' }), 'N1', /encoding/],
  ];
  for (const [what, b, h, node, re] of cases) {
    t.throws(() => parseBundle(b, h, node, MAX), { code: 'IBP_ERR_REG_ANSWER', message: re }, what);
  }
});

t.test('random bytes never escape as anything but IBP_ERR_REG_ANSWER', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), fc.boolean(), (bytes, lz4) => {
      try {
        parseBundle(Buffer.from(bytes), headers(lz4 ? { 'content-encoding': 'lz4' } : {}), 'N1', 4096);
        return false; // random bytes are never a valid bundle of N1
      } catch (e) {
        return isIbpError(e, 'IBP_ERR_REG_ANSWER');
      }
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.json(), (text) => {
      try {
        parseBundle(Buffer.from(text), headers(), 'N1', 4096);
        return false;
      } catch (e) {
        return isIbpError(e, 'IBP_ERR_REG_ANSWER');
      }
    }),
    { numRuns: 300 },
  );
  t.pass('500 random bodies and 300 random JSON texts rejected cleanly');
});

t.test('backoff: min, doubling, capped at max, ±20 % jitter, reset', async (t) => {
  const b = new Backoff(100, 1000);
  const delays = Array.from({ length: 8 }, () => b.next());
  const bases = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
  delays.forEach((d, i) => t.ok(d >= bases[i]! * 0.8 - 1 && d <= bases[i]! * 1.2 + 1, `attempt ${i + 1}: ${d} ms around ${bases[i]}`));
  t.equal(b.attempts, 8);
  b.reset();
  t.equal(b.attempts, 0);
  t.ok(b.next() <= 121, 'back to the minimum after a success');
});

/**
 * A corrupt segment gives IBP_ERR_SHM_LAYOUT, never a crash or a read outside the segment: targeted
 * corruptions of the header, tables, records and strings, then random byte flips (fast-check) where
 * every reader call either answers or throws an IbpError.
 */
import t from 'tap';
import fc from 'fast-check';
import { ConfigSpaceWriter, type SpaceSettings } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { attachShared, releaseShared } from '../../lib/shm/attachments.js';
import { APP, HEADER, INDEX, NODE } from '../../lib/shm/layout.js';
import { homeKeyBase } from '../../lib/shm/keys.js';
import { isIbpError } from '../../lib/errors.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { reapHome } from '../helpers/procs.js';

const settings: SpaceSettings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 1, retry_connect_timeval: 5, min_compress_size: 0 };
const bundle: NodeBundle = {
  epoch: 'e',
  version: 1,
  this_node: 'N1',
  nodes: Array.from({ length: 6 }, (_, i) => ({ node: `N${i}`, invalid: 0 as const, key_exp: `k${i}`, hosts: [{ ip: `127.0.0.${i + 1}`, port: 1000 + i }, { ip: '127.0.1.1', port: 2000 + i }], kvs: { a: `v${i}`, b: 'x'.repeat(i) } })),
  apps: Array.from({ length: 8 }, (_, i) => ({ app: `A${i}`, desc: `app ${i}`, bin: `a${i}.so`, timeout: 1 + i, timeout2: 0, invalid: 0 as const, server_node: 'N0', sha256: '', size: i })),
};

/** Every reader call once; returns the codes of the IbpErrors thrown (anything else is re-thrown). */
function exercise(r: ConfigSpace): string[] {
  const codes: string[] = [];
  const call = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!isIbpError(e)) throw e;
      codes.push(e.code);
    }
  };
  call(() => r.header());
  call(() => r.nodes());
  call(() => r.apps());
  for (let i = 0; i < 7; i++) {
    call(() => r.node(`N${i}`));
    call(() => r.hosts(`N${i}`));
    call(() => r.kvs(`N${i}`));
    call(() => r.kv(`N${i}`, 'a'));
    call(() => r.getHostLoad(i));
    call(() => r.setHostLoad(i, 0, 1));
    call(() => r.getRetryAt(i));
  }
  for (let i = 0; i < 9; i++) call(() => r.app(`A${i}`));
  return codes;
}

t.test('targeted corruption', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const w = new ConfigSpaceWriter(homeKeyBase(home));
  const { key } = w.publish(bundle, settings);
  const seg = attachShared(key)!;
  t.teardown(() => releaseShared(seg));
  const pristine = Buffer.from(seg.buf);
  const u32 = (off: number, v: number) => seg.buf.writeUInt32LE(v >>> 0, off);
  const nodeRecords = pristine.readUInt32LE(HEADER.NODE_RECORDS);
  const nodeTable = pristine.readUInt32LE(HEADER.NODE_TABLE);
  const appRecords = pristine.readUInt32LE(HEADER.APP_RECORDS);

  const atOpen: [string, () => void][] = [
    ['bad magic', () => u32(HEADER.MAGIC, 0xdeadbeef)],
    ['other layout version', () => u32(HEADER.VERSION, 99)],
    ['ready word unset', () => u32(HEADER.READY, 0)],
    ['used size past the segment', () => u32(HEADER.USED_SIZE, seg.buf.length + 8)],
    ['node records outside', () => u32(HEADER.NODE_RECORDS, 0xfffffff0)],
    ['string area outside', () => u32(HEADER.STRINGS_SIZE, 0x7fffffff)],
    ['table not a power of two', () => u32(HEADER.APP_SLOTS, 7)],
    ['table smaller than its records', () => u32(HEADER.NODE_SLOTS, 2)],
    ['host count huge', () => u32(HEADER.HOST_COUNT, 0x10000000)],
  ];
  for (const [what, corrupt] of atOpen) {
    seg.buf.set(pristine);
    corrupt();
    t.throws(() => ConfigSpace.openKey(w.indexKey), { code: 'IBP_ERR_SHM_LAYOUT' }, what);
  }

  const atLookup: [string, () => void, (r: ConfigSpace) => unknown][] = [
    ['node table slot points past the records', () => { for (let s = 0; s < pristine.readUInt32LE(HEADER.NODE_SLOTS); s++) if (pristine.readUInt32LE(nodeTable + s * 4)) u32(nodeTable + s * 4, 1000); }, (r) => r.node('N3')],
    ['node name outside the string area', () => u32(nodeRecords + 3 * NODE.SIZE + NODE.NAME, 8), (r) => r.nodes()],
    ['string length runs past the area', () => { const ref = pristine.readUInt32LE(nodeRecords + 2 * NODE.SIZE + NODE.KEY_EXP); u32(ref, 0x7ffffff0); }, (r) => r.node('N2')],
    ['hosts of a node past the host array', () => u32(nodeRecords + 1 * NODE.SIZE + NODE.HOST_COUNT, 5000), (r) => r.hosts('N1')],
    ['kvs of a node past the kv array', () => u32(nodeRecords + 1 * NODE.SIZE + NODE.KV_COUNT, 5000), (r) => r.kvs('N1')],
    ['app desc unaligned', () => u32(appRecords + 4 * APP.SIZE + APP.DESC, pristine.readUInt32LE(appRecords + 4 * APP.SIZE + APP.DESC) + 1), (r) => r.app('A4')],
  ];
  for (const [what, corrupt, use] of atLookup) {
    seg.buf.set(pristine);
    const r = ConfigSpace.openKey(w.indexKey);
    corrupt();
    t.throws(() => use(r), { code: 'IBP_ERR_SHM_LAYOUT' }, what);
    t.same(exercise(r).filter((c) => c !== 'IBP_ERR_SHM_LAYOUT' && c !== 'IBP_ERR_SHM_ARG'), [], `${what}: only IbpErrors`);
    r.close();
  }
  seg.buf.set(pristine);
  const r = ConfigSpace.openKey(w.indexKey);
  t.same(exercise(r), [], 'pristine: no error');
  t.throws(() => r.getHostLoad(12), { code: 'IBP_ERR_SHM_ARG' }, 'host index past the array');
  t.throws(() => r.setRetryAt(-1, 0, 1), { code: 'IBP_ERR_SHM_ARG' });
  t.throws(() => r.setHostLoad(1.5, 0, 1), { code: 'IBP_ERR_SHM_ARG' });
  r.close();
  w.removeAll();
});

t.test('a corrupt index segment', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const w = new ConfigSpaceWriter(homeKeyBase(home));
  w.publish(bundle, settings);
  const seg = attachShared(w.indexKey)!;
  const pristine = Buffer.from(seg.buf);
  seg.buf.writeUInt32LE(0x12345678, INDEX.MAGIC);
  t.throws(() => ConfigSpace.openKey(w.indexKey), { code: 'IBP_ERR_SHM_LAYOUT' });
  t.throws(() => new ConfigSpaceWriter(w.indexKey), { code: 'IBP_ERR_SHM_LAYOUT' }, 'a writer refuses it too');
  seg.buf.set(pristine);
  // the index names a key that is not a config segment (the index segment itself)
  seg.buf.writeBigInt64LE((5n << 32n) | BigInt(w.indexKey), INDEX.CURRENT);
  t.throws(() => ConfigSpace.openKey(w.indexKey), { code: 'IBP_ERR_SHM_LAYOUT' });
  // a key with no segment at all
  seg.buf.writeBigInt64LE((5n << 32n) | BigInt(w.indexKey + 200), INDEX.CURRENT);
  t.throws(() => ConfigSpace.openKey(w.indexKey), { code: 'IBP_ERR_SHM_NO_SPACE' });
  seg.buf.set(pristine);
  t.ok(ConfigSpace.openKey(w.indexKey).node('N1'));
  releaseShared(seg);
  w.removeAll();
});

t.test('random byte flips: every call answers or throws an IbpError', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const w = new ConfigSpaceWriter(homeKeyBase(home));
  const { key } = w.publish(bundle, settings);
  const seg = attachShared(key)!;
  const pristine = Buffer.from(seg.buf);
  const used = pristine.readUInt32LE(HEADER.USED_SIZE);
  let opened = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 12, max: used - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (flips) => {
      seg.buf.set(pristine);
      for (const [at, v] of flips) seg.buf[at] = v;
      let r: ConfigSpace;
      try {
        r = ConfigSpace.openKey(w.indexKey);
      } catch (e) {
        if (!isIbpError(e)) throw e;
        refused++;
        return;
      }
      opened++;
      try {
        exercise(r);
      } finally {
        r.close();
      }
    }),
    { numRuns: 400 },
  );
  t.ok(opened > 0 && refused > 0, `${opened} opened, ${refused} refused at open`);
  seg.buf.set(pristine);
  releaseShared(seg);
  w.removeAll();
});

/**
 * The layout contract: the constants of lib/shm/layout.ts against a golden table, the tables of
 * docs/ARCHITECTURE.md §5, and the invariants the reader relies on (fields inside their record,
 * no overlap, atomics aligned). A layout change must bump LAYOUT_VERSION and update all three.
 */
import t from 'tap';
import fs from 'node:fs';
import * as L from '../../lib/shm/layout.js';

const STRUCTS = { INDEX: L.INDEX, HEADER: L.HEADER, NODE: L.NODE, HOST: L.HOST, APP: L.APP, KV: L.KV, NODE_KEY: L.NODE_KEY } as const;
type StructName = keyof typeof STRUCTS;

/** Size of each field: every field not listed is 4 bytes. */
const WIDE: Record<string, number> = {
  'INDEX.CURRENT': 8, 'INDEX.PUBLISHED_AT': 8,
  'HEADER.BUILD_TIME': 8, 'HEADER.CONNECTING_TIMEOUT': 8, 'HEADER.RETRY_CONNECT_TIMEVAL': 8, 'HEADER.BUNDLE_VERSION': 8,
  'HOST.RETRY_AT': 8, 'APP.TIMEOUT': 8, 'APP.TIMEOUT2': 8, 'NODE_KEY.ENABLE_AT': 8, 'NODE_KEY.DISABLE_AT': 8,
};

t.test('golden sizes and versions', async (t) => {
  t.equal(L.LAYOUT_VERSION, 2);
  t.equal(L.INDEX_MAGIC, 0x49504249);
  t.equal(Buffer.from('IBPI').readUInt32LE(0), L.INDEX_MAGIC);
  t.equal(Buffer.from('IBPC').readUInt32LE(0), L.CONFIG_MAGIC);
  t.same(Object.fromEntries(Object.entries(STRUCTS).map(([k, v]) => [k, v.SIZE])), { INDEX: 64, HEADER: 256, NODE: 32, HOST: 32, APP: 64, KV: 16, NODE_KEY: 32 });
  t.equal(L.HOST.LOAD, 16);
  t.equal(L.HOST.RETRY_AT, 24);
  t.equal(L.INDEX.CURRENT, 8);
  t.equal(L.HEADER.READY, 8);
  t.equal(L.CONFIG_KEY_FIRST, 16);
  t.equal(L.CONFIG_KEY_LAST, 255);
});

t.test('fields fit their record, do not overlap, atomics and doubles are aligned', async (t) => {
  for (const [name, s] of Object.entries(STRUCTS) as [StructName, Record<string, number>][]) {
    const fields = Object.entries(s).filter(([f]) => f !== 'SIZE').map(([f, off]) => ({ f, off, size: WIDE[`${name}.${f}`] ?? 4 })).sort((a, b) => a.off - b.off);
    let end = 0;
    for (const { f, off, size } of fields) {
      t.ok(off >= end, `${name}.${f} at ${off} does not overlap the field before (ends ${end})`);
      t.equal(off % size, 0, `${name}.${f} aligned to ${size}`);
      end = off + size;
    }
    t.ok(end <= s.SIZE!, `${name} fields end at ${end} ≤ SIZE ${s.SIZE}`);
    t.equal(s.SIZE! % 4, 0, `${name}.SIZE multiple of 4`);
  }
  t.equal(L.HOST.SIZE % 8, 0, 'host records keep RETRY_AT 8-aligned');
  t.equal(L.APP.SIZE % 8, 0, 'app records keep the doubles 8-aligned');
  t.equal(L.NODE_KEY.SIZE % 8, 0, 'node key records keep the doubles 8-aligned');
});

t.test('docs/ARCHITECTURE.md §5 tables match the constants', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  for (const [name, s] of Object.entries(STRUCTS) as [StructName, Record<string, number>][]) {
    const m = doc.match(new RegExp(`#### \`${name}\`: [^(]*\\((\\d+) bytes\\)\\n([\\s\\S]*?)(?=\\n#### |\\n### |\\n## |$)`));
    if (!m) {
      t.fail(`no table for ${name} in §5`);
      continue;
    }
    t.equal(Number(m[1]), s.SIZE, `${name} size in the doc`);
    const rows = Object.fromEntries([...m[2]!.matchAll(/^\| (\d+) \| (\w+) \|/gm)].map((r) => [r[2]!, Number(r[1])]));
    const want = Object.fromEntries(Object.entries(s).filter(([f]) => f !== 'SIZE'));
    t.same(rows, want, `${name} offsets in the doc`);
  }
});

t.test('hashes', async (t) => {
  t.equal(L.hashBytes(Buffer.from('')), 0x811c9dc5, 'FNV-1a offset basis');
  t.equal(L.hashBytes(Buffer.from('a')), 0xe40c292c, 'FNV-1a of "a"');
  for (const s of ['ECIF', 'T0001', 'node.name-1', '客户', 'é', '']) t.equal(L.hashString(s), L.hashBytes(Buffer.from(s, 'utf8')), `hashString(${s}) = hashBytes(utf8)`);
  t.not(L.kvHash(0, L.hashString('k')), L.kvHash(1, L.hashString('k')), 'the node index changes the kv hash');
  t.same([0, 1, 2, 3, 5, 100].map(L.tableSlots), [2, 2, 4, 8, 16, 256]);
  t.same([0, 1, 3, 4, 5].map(L.stringSize), [4, 8, 8, 8, 12]);
});

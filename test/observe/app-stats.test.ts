/**
 * The per-app counters segment (ibas/app-stats.ts): its layout against docs/ARCHITECTURE.md
 * §7.4.1, counting by app, result code and latency bucket, records shared by name across
 * attachments (as workers share them), the rc overflow slot and the "(other)" record of a full
 * table.
 */
import t from 'tap';
import fs from 'node:fs';
import { AppStats, APP_STATS, LATENCY_BUCKETS_US } from '../../ibas/app-stats.js';
import { destroySegment } from '../../lib/shm/sysv.js';

const KEY = 0x5e000000 + (process.pid & 0xffff) * 8 + 3;

t.test('docs/ARCHITECTURE.md §7.4.1 matches APP_STATS', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  const sec = doc.slice(doc.indexOf('#### 7.4.1 App stats'), doc.indexOf('States and their `-s status` characters'));
  t.match(sec, `64 + ${APP_STATS.CAPACITY} × ${APP_STATS.RECORD} bytes`);
  const all = Object.fromEntries([...sec.matchAll(/^\| (\d+) \| (\w+) \|/gm)].map((m) => [m[2]!, Number(m[1])]));
  for (const [f, off] of Object.entries(APP_STATS.H)) t.equal(all[f], off, `header ${f}`);
  for (const [f, off] of Object.entries(APP_STATS.R)) t.equal(all[f], off, `record ${f}`);
  t.match(sec, `0x${APP_STATS.MAGIC.toString(16)}`);
  t.equal(APP_STATS.R.HIST + APP_STATS.BUCKETS * 8, APP_STATS.R.RC, 'the histogram ends where the rc slots start');
  t.equal(APP_STATS.R.RC + APP_STATS.RC_SLOTS * 16, APP_STATS.RECORD, 'the rc slots end the record');
  t.equal(APP_STATS.R.COUNT % 8, 0, '64-bit counters are 8-aligned');
});

t.test('counts by app, rc and latency; shared by name across attachments', async (t) => {
  const owner = AppStats.create(KEY);
  t.teardown(() => owner.destroy());
  const worker = AppStats.attach(KEY)!; // another attachment, as a worker has
  t.ok(worker);
  worker.add('A', 0, 800); // ≤ 1 ms
  worker.add('A', 0, 30_000); // ≤ 50 ms
  owner.add('A', 1004, 20_000_000); // +Inf
  owner.add('B', 0, 1);
  const byApp = new Map(owner.read().map((v) => [v.app, v]));
  t.same([...byApp.keys()].sort(), ['A', 'B']);
  const a = byApp.get('A')!;
  t.equal(a.count, 3);
  t.equal(a.sumUs, 800 + 30_000 + 20_000_000);
  t.equal(a.buckets[0], 1, '800 µs in the first bucket');
  t.equal(a.buckets[LATENCY_BUCKETS_US.indexOf(50_000)], 1, '30 ms in the 50 ms bucket');
  t.equal(a.buckets[APP_STATS.BUCKETS - 1], 1, '20 s in +Inf');
  t.same([...a.byRc].sort(), [[0, 2], [1004, 1]]);
  worker.detach();
});

t.test('rc slots overflow into "other"; a full table counts under "(other)"', async (t) => {
  const s = AppStats.create(KEY, 3);
  t.teardown(() => s.destroy());
  for (let rc = 0; rc < 10; rc++) s.add('A', rc, 1);
  const a = s.read().find((v) => v.app === 'A')!;
  t.equal(a.count, 10);
  t.equal(a.byRc.size, APP_STATS.RC_SLOTS, '7 codes of their own + other');
  t.equal(a.byRc.get(-1), 10 - (APP_STATS.RC_SLOTS - 1), 'the rest counted as other');
  s.add('B', 0, 1);
  s.add('C', 0, 1); // capacity 3: A, B, then the last record is (other)
  s.add('D', 0, 1);
  const names = s.read().map((v) => v.app).sort();
  t.same(names, ['(other)', 'A', 'B']);
  t.equal(s.read().find((v) => v.app === '(other)')!.count, 2);
});

t.test('a segment of another layout is refused, open() replaces it', async (t) => {
  const s = AppStats.create(KEY, 1);
  s.seg.buf.writeUInt32LE(99, APP_STATS.H.VERSION);
  t.throws(() => AppStats.attach(KEY), { code: 'IBP_ERR_SHM_LAYOUT' });
  s.detach();
  const fresh = AppStats.open(KEY);
  t.equal(fresh.capacity, APP_STATS.CAPACITY);
  fresh.destroy();
  destroySegment(KEY);
});

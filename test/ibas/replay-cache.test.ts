/**
 * The replay cache of signed hellos (ibas/replay-cache.ts): its layout against
 * docs/ARCHITECTURE.md §7.4.2, a hello remembered until its expiry (per nonce and client KCV),
 * expired entries reused without cutting the chains of live ones, and a full table that refuses
 * (IBP_ERR_TX_REPLAY_CACHE_FULL) rather than forgets; two processes storing the same hellos
 * concurrently (interleaved, each accepting a share) accept every hello at most once in all. Two workers of a real ibas:
 * test/ibas/tx-replay-pool.test.ts.
 */
import t from 'tap';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { REPLAY_CACHE, ReplayCache, replayCapacityOf } from '../../ibas/replay-cache.js';
import { KEY_SLOT } from '../../lib/shm/keys.js';
import { destroySegment } from '../../lib/shm/sysv.js';

const KEY = 0x5e000000 + (process.pid & 0xffff) * 8 + 4;
const nonce = (): Buffer => crypto.randomBytes(16);

t.test('docs/ARCHITECTURE.md §7.4.2 matches REPLAY_CACHE', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  const sec = doc.slice(doc.indexOf('#### 7.4.2 Replay cache'), doc.indexOf('### 7.5 Transactions in a worker'));
  t.ok(sec.length > 0, 'the section exists');
  t.match(sec, `64 + ${REPLAY_CACHE.DEFAULT_SIZE} × ${REPLAY_CACHE.ENTRY} bytes`);
  const all = Object.fromEntries([...sec.matchAll(/^\| (\d+) \| (\w+) \|/gm)].map((m) => [m[2]!, Number(m[1])]));
  for (const [f, off] of Object.entries(REPLAY_CACHE.H)) t.equal(all[f], off, `header ${f}`);
  for (const [f, off] of Object.entries(REPLAY_CACHE.E)) t.equal(all[f], off, `entry ${f}`);
  t.match(sec, `0x${REPLAY_CACHE.MAGIC.toString(16)}`);
  t.match(sec, `probe limit ${REPLAY_CACHE.PROBE}`);
  t.match(doc, `| base + ${KEY_SLOT.REPLAY_CACHE} | ibas replay cache`, 'the key table names its slot');
  t.equal(REPLAY_CACHE.E.FINGERPRINT + 8, REPLAY_CACHE.ENTRY, 'the fingerprint ends the entry');
  t.equal(replayCapacityOf(1000), 1024, 'sizes round up to a power of two');
  t.equal(replayCapacityOf(1), REPLAY_CACHE.PROBE, 'never below the probe limit');
});

t.test('a hello is remembered until its expiry, per nonce and client KCV', async (t) => {
  const c = ReplayCache.create(KEY, 1024);
  t.teardown(() => c.destroy());
  t.equal(c.capacity, 1024);
  const now = 1_800_000_000_000;
  const n = nonce();
  t.ok(c.remember(n, 'AAAAAA', now + 1000, now), 'first time: new');
  t.notOk(c.remember(n, 'AAAAAA', now + 1000, now + 500), 'again within its time: a replay');
  t.ok(c.remember(n, 'BBBBBB', now + 1000, now + 500), 'the same nonce under another client key is another hello');
  t.ok(c.remember(n, 'AAAAAA', now + 3000, now + 1001), 'past its expiry: forgotten (the time check refuses it by then)');
  // many hellos, the first half expiring earlier: the live ones stay found after the others are reused
  const early = Array.from({ length: 300 }, nonce);
  const late = Array.from({ length: 300 }, nonce);
  t.equal(early.filter((x) => c.remember(x, 'K', now + 10_000, now)).length, early.length, 'early hellos stored');
  for (const x of late) c.remember(x, 'K', now + 20_000, now);
  const fresh = Array.from({ length: 300 }, nonce);
  let newOk = 0;
  for (const x of fresh) if (c.remember(x, 'K', now + 30_000, now + 15_000)) newOk++;
  t.equal(newOk, fresh.length, 'new hellos take expired entries');
  t.equal(late.filter((x) => c.remember(x, 'K', now + 20_000, now + 15_000)).length, 0, 'every live hello is still refused');
  t.equal(c.liveCount(now + 15_000), late.length + fresh.length, 'live entries counted (the first ones expired)');
});

t.test('a full table refuses (TX_REPLAY_CACHE_FULL) rather than forgets', async (t) => {
  const c = ReplayCache.create(KEY, 1);
  t.teardown(() => c.destroy());
  t.equal(c.capacity, REPLAY_CACHE.PROBE);
  const now = 1_800_000_000_000;
  const kept = Array.from({ length: c.capacity }, nonce);
  for (const x of kept) c.remember(x, 'K', now + 1000, now);
  t.throws(() => c.remember(nonce(), 'K', now + 1000, now), { code: 'IBP_ERR_TX_REPLAY_CACHE_FULL', message: /security\.replay_cache_size/ }, 'full: refused, naming the key to raise');
  t.notOk(c.remember(kept[0]!, 'K', now + 1000, now), 'a remembered hello is still a replay');
  t.ok(c.remember(nonce(), 'K', now + 5000, now + 2000), 'once they expire there is room again');
});

t.test('attach: the same table; another layout is refused', async (t) => {
  const c = ReplayCache.create(KEY, 64);
  t.teardown(() => destroySegment(KEY));
  const n = nonce();
  t.ok(c.remember(n, 'K', Date.now() + 60_000, Date.now()));
  c.detach();
  const again = ReplayCache.open(KEY, 4096);
  t.equal(again.capacity, 64, 'open attaches the existing table (its size kept)');
  t.notOk(again.remember(n, 'K', Date.now() + 60_000, Date.now()), 'and its hellos');
  again.seg.buf.writeUInt32LE(99, REPLAY_CACHE.H.VERSION);
  again.detach();
  t.throws(() => ReplayCache.attach(KEY), { code: 'IBP_ERR_SHM_LAYOUT' }, 'another layout: refused');
  const fresh = ReplayCache.open(KEY, 128);
  t.equal(fresh.capacity, 128, 'open replaces a table of another layout');
  fresh.destroy();
});

t.test('two processes storing the same hellos concurrently: each accepted at most once in all', async (t) => {
  const c = ReplayCache.create(KEY, 65_536);
  t.teardown(() => c.destroy());
  const COUNT = 20_000;
  const racer = fileURLToPath(new URL('./replay-racer.mjs', import.meta.url));
  const kids = [0, 1].map(() => fork(racer, [String(KEY), String(COUNT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] }));
  t.teardown(() => { for (const k of kids) k.kill('SIGKILL'); });
  await Promise.all(kids.map((k) => once(k, 'message')));
  const results = kids.map((k) => once(k, 'message').then(([m]) => (m as { fresh: number[] }).fresh));
  const at = Date.now() + 500;
  for (const k of kids) k.send({ at });
  const fresh = await Promise.all(results);
  const times = new Map<number, number>();
  for (const f of fresh) for (const i of f) times.set(i, (times.get(i) ?? 0) + 1);
  t.equal([...times.values()].filter((n) => n > 1).length, 0, 'no hello accepted twice');
  t.ok(times.size > COUNT * 0.9, `nearly every hello accepted once (${times.size} of ${COUNT}; a tie refuses both: fail closed)`);
  t.ok(c.liveCount() >= COUNT, 'every hello is remembered');
  t.comment(`accepted per racer: ${fresh.map((f) => f.length).join(', ')}`);
});

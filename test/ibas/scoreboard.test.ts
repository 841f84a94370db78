// The scoreboard in shared memory: layout checks, slot lifecycle, load counting, and the seqlock:
// a reader in this process never sees a torn slot while another PROCESS rewrites it as fast as
// it can, and a writer killed mid-write leaves a slot the manager repairs.
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { destroySegment, Segment } from '../../lib/shm/sysv.js';
import { Scoreboard, SB_HEADER, SB_SLOT, STATE_CHAR, WORKER_STATES } from '../../ibas/scoreboard.js';
import { ROOT, waitFor } from '../helpers/procs.js';

t.test('slot lifecycle, load and free slots', async (t) => {
  const key = homeKeyBase(t.testdir()) + KEY_SLOT.SCOREBOARD;
  t.teardown(() => { destroySegment(key); });
  const sb = Scoreboard.create(key, 4, 'STATIC_WORKERPOOL', 3);
  t.same(sb.load(), { working: 0, total: 0 });
  t.equal(sb.freeSlot(), 0);
  sb.prepare(0, 3);
  t.equal(sb.freeSlot(), 1, 'a prepared slot is taken');
  sb.assign(0, 4242);
  t.match(sb.read(0), { pid: 4242, generation: 3, state: 'STARTING', torn: false });
  const w = sb.writer(0);
  w.start(4242, 3);
  w.connection();
  w.txBegin('ibp_test_echo', 7500);
  t.match(sb.read(0), { state: 'WORKING', app: 'ibp_test_echo', timeout2Ms: 7500, connections: 1 });
  t.ok(sb.read(0).txStartAt > 0);
  t.same(sb.load(), { working: 1, total: 1 });
  w.txEnd(false, 'KEEPALIVE');
  t.match(sb.read(0), { state: 'KEEPALIVE', count: 1, errors: 1, txStartAt: 0 });
  w.txBegin('x'.repeat(100), 0);
  t.equal(sb.read(0).app, 'x'.repeat(64), 'app names are cut to 64 bytes');
  // (one process maps a segment once: shm-typed-array detaches by key)
  t.match(sb.header(), { slots: 4, generation: 3, mode: 'STATIC_WORKERPOOL', managerPid: process.pid });
  const last = sb.release(0);
  t.equal(last.count, 1);
  sb.retire(last.count, last.errors, true);
  t.match(sb.header(), { retiredTx: 1, retiredErrors: 1, deaths: 1 });
  t.equal(sb.freeSlot(), 0, 'a released slot is free again');
  t.throws(() => sb.read(4), RangeError);
  sb.destroy();
});

t.test('a segment that is not a scoreboard is refused', async (t) => {
  const key = homeKeyBase(t.testdir()) + KEY_SLOT.SCOREBOARD;
  t.teardown(() => { destroySegment(key); });
  const seg = Segment.create(key, 256)!;
  seg.buf.fill(7);
  t.throws(() => Scoreboard.attach(key), { code: 'IBP_ERR_SHM_LAYOUT' });
  seg.detach();
});

t.test('no torn read while another process writes its slot', async (t) => {
  const dir = t.testdir();
  const key = homeKeyBase(dir) + KEY_SLOT.SCOREBOARD;
  t.teardown(() => { destroySegment(key); });
  const sb = Scoreboard.create(key, 2, 'STATIC_WORKERPOOL', 1);
  sb.prepare(1, 1);
  // the writer: every write sets count, errors and connections to the same value, and the app to it
  const script = path.join(dir, 'writer.mjs');
  fs.writeFileSync(script, `
    import { Scoreboard } from ${JSON.stringify(path.join(ROOT, 'dist/ibas/scoreboard.js'))};
    const sb = Scoreboard.attach(${key});
    const buf = sb.seg.buf;
    const base = ${SB_HEADER + SB_SLOT};
    const end = Date.now() + 1500;
    let n = 0;
    process.stdout.write('GO\\n');
    while (Date.now() < end) {
      n++;
      sb.writeSlot(1, (b, o) => {
        b.writeInt32LE(n, o + 16); b.writeInt32LE(n, o + 20); b.writeInt32LE(n, o + 24);
        const s = String(n); b[o + 56] = s.length; b.write(s, o + 57);
      });
    }
    process.stdout.write('DONE ' + n + '\\n');
  `);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  // taken now: the writer may exit before the read loop below notices its DONE, and a listener
  // added after 'exit' would wait forever (tap then ends the file with "test unfinished")
  const exited = new Promise((r) => child.once('exit', r));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitFor('writer to start', () => out.includes('GO'), 20_000);
  let reads = 0;
  let bad = 0;
  let torn = 0;
  while (!out.includes('DONE')) {
    const s = sb.read(1);
    reads++;
    if (s.torn) torn++;
    else if (s.count !== s.errors || s.count !== s.connections || (s.count > 0 && s.app !== String(s.count))) bad++;
    if (reads % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  await exited;
  t.equal(bad, 0, `${reads} reads during ${out.trim()} writes: none mixed two writes`);
  t.ok(torn < reads / 100, `reads that gave up retrying under a non-stop writer are flagged torn (${torn})`);
  t.ok(reads > 100);
});

t.test('a writer killed mid-write: readers flag it, the manager repairs it', async (t) => {
  const key = homeKeyBase(t.testdir()) + KEY_SLOT.SCOREBOARD;
  t.teardown(() => { destroySegment(key); });
  const sb = Scoreboard.create(key, 1, 'FORK', 1);
  sb.prepare(0, 1);
  const seqIdx = SB_HEADER >> 2;
  Atomics.add(sb.seg.i32, seqIdx, 1); // a writer began and never finished
  t.equal(sb.read(0).torn, true, 'the reader reports the slot torn instead of spinning forever');
  sb.release(0);
  t.equal(Atomics.load(sb.seg.i32, seqIdx) & 1, 0, 'release leaves an even sequence');
  t.equal(sb.read(0).torn, false);
  sb.destroy();
});

t.test('docs/ARCHITECTURE.md §7.4 lists every worker state with its character', async (t) => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| ([A-Z]+) \| `(.)` \| [^|]+\|$/gm)].map((m) => [m[1]!, m[2]!]));
  for (const s of WORKER_STATES) t.equal(rows.get(s), STATE_CHAR[s], `${s} is '${STATE_CHAR[s]}' in the docs`);
  t.equal(rows.size, WORKER_STATES.length, 'no state in the docs that the code does not have');
  t.equal(new Set(Object.values(STATE_CHAR)).size, WORKER_STATES.length, 'one character per state');
});

t.test('a connection holds its worker in READING until a transaction runs', async (t) => {
  const key = homeKeyBase(t.testdir()) + KEY_SLOT.SCOREBOARD;
  t.teardown(() => { destroySegment(key); });
  const sb = Scoreboard.create(key, 2, 'STATIC_WORKERPOOL', 1);
  sb.prepare(0, 1);
  const w = sb.writer(0);
  w.start(process.pid, 1);
  w.connection();
  t.equal(sb.read(0).state, 'READING', 'accepted: READING');
  t.same(sb.load(), { working: 1, total: 1 }, 'a held worker counts in the load');
  w.txBegin('app', 1000);
  t.equal(sb.read(0).state, 'WORKING');
  w.txEnd(true, 'KEEPALIVE');
  t.equal(sb.read(0).state, 'KEEPALIVE');
  sb.destroy();
});

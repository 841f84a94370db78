/**
 * The config space across real processes: readers in other processes pin old segments until they
 * detach, a reader exiting never removes the live config, concurrent CAS writers never corrupt a
 * host entry, and removeAll leaves nothing in `ipcs -m`.
 */
import t from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ConfigSpaceWriter } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { attachmentInfo } from '../../lib/shm/attachments.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { attachCount, listSegments, shmidOf } from '../../lib/shm/sysv.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { reapHome, segmentsOfHome, waitFor } from '../helpers/procs.js';

const CHILD = fileURLToPath(new URL('./shm-child.mjs', import.meta.url));
/** A CAS value: the writer id in bits 0..7, a sequence number in bits 8..30 (shm-child.mjs writes the same). */
const encodeLoad = (id: number, seq: number): number => ((seq & 0x7fffff) << 8) | id;

function childBundle(version: number): NodeBundle {
  return {
    epoch: 'child',
    version,
    this_node: 'N0',
    nodes: [{ node: 'N0', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 1000 + version }, { ip: '127.0.0.2', port: 2000 }, { ip: '127.0.0.3', port: 3000 }], kvs: { v: String(version) } }],
    apps: [{ app: 'A0', desc: `v${version}`, bin: 'a0.so', timeout: 1, timeout2: 0, invalid: 0, sha256: '', size: 0 }],
  };
}

const settings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 1, retry_connect_timeval: 5, min_compress_size: 1024 };

interface Child {
  proc: ChildProcess;
  next<T>(): Promise<T>;
  send(m: unknown): void;
}

function spawnChild(t: Tap.Test, args: string[]): Child {
  // plain node: the child runs dist/, without the test's TypeScript loader
  const proc = fork(CHILD, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  const queue: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  proc.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  proc.on('exit', (code, signal) => {
    // a child that dies early (e.g. dist/ not built: `npx tsc -p tsconfig.json`) fails the waits at once
    for (const w of waiters.splice(0)) w({ error: `child ${args.join(' ')} exited (${code ?? signal}) before answering` });
  });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    next<T>(): Promise<T> {
      if (queue.length) return Promise.resolve(queue.shift() as T);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child ${args.join(' ')} sent nothing within 20 s`)), 20_000);
        waiters.push((m) => {
          clearTimeout(timer);
          if (m && typeof m === 'object' && 'error' in m) reject(new Error(String((m as { error: string }).error)));
          else resolve(m as T);
        });
      });
    },
    send(m: unknown) {
      proc.send(m);
    },
  };
}

t.test('an old segment disappears only after its last reader (another process) detaches', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
  const w = new ConfigSpaceWriter(indexKey);
  const p1 = w.publish(childBundle(1), settings);

  const reader = spawnChild(t, ['read', String(indexKey)]);
  const seen = await reader.next<{ attached: { generation: number; key: number; v: string } }>();
  t.same(seen.attached, { generation: 1, key: p1.key, v: '1' });
  t.equal(attachCount(p1.key), 4, 'writer (map + pin) and reader (map + pin)');

  const p2 = w.publish(childBundle(2), settings);
  t.not(p2.key, p1.key);
  t.equal(attachCount(p1.key), 2, 'the writer detached from the old segment, the reader has not');
  t.same(w.collectGarbage(), [], 'not removed while the other process is attached');
  t.same(w.oldSegments(), [p1.key]);

  reader.send('detach');
  t.same(await reader.next(), { detached: true });
  t.same(w.collectGarbage(), [p1.key], 'removed after the reader detached');
  t.equal(shmidOf(p1.key), -1);
  t.same(w.oldSegments(), []);
  reader.send('exit');
  await once(reader.proc, 'exit');
  t.ok(shmidOf(p2.key) >= 0, 'the current segment stays');
  w.removeAll();
});

t.test('a reader that closes and exits never removes the config space', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  // the writer publishes and exits (ibma -a stop): nobody is attached to anything afterwards
  const writer = spawnChild(t, ['publish', String(indexKey)]);
  writer.send({ bundles: [childBundle(1)], settings });
  const { published } = await writer.next<{ published: { key: number; generation: number }[] }>();
  await once(writer.proc, 'exit');
  const key = published[0]!.key;
  t.equal(attachCount(key), 0);
  t.equal(attachCount(indexKey), 0);

  const reader = spawnChild(t, ['read', String(indexKey)]);
  t.match(await reader.next(), { attached: { generation: 1, key } });
  reader.send('detach');
  await reader.next();
  reader.send('exit');
  await once(reader.proc, 'exit');
  t.equal(reader.proc.exitCode, 0, 'the reader exited normally (exit handlers ran)');
  t.equal(attachCount(key), 0, 'config segment still there after the reader exited');
  t.equal(attachCount(indexKey), 0, 'index still there after the reader exited');
  // and a reader here in the test process (open, close) too; then this process exits later on
  const r = ConfigSpace.openKey(indexKey);
  t.equal(r.kv('N0', 'v'), '1');
  r.close();
  const w = new ConfigSpaceWriter(indexKey);
  t.same(w.current(), published[0]);
  w.removeAll();
  t.same(await segmentsOfHome(home), []);
});

t.test('concurrent CAS writers in several processes never corrupt a host entry', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const w = new ConfigSpaceWriter(indexKey);
  w.publish(childBundle(1), settings);
  const before = ConfigSpace.openKey(indexKey);
  const hostsBefore = before.hosts('N0');
  // three writers: two child processes and this process
  const N = 3;
  const writers = Array.from({ length: N - 1 }, (_, i) => spawnChild(t, ['cas', String(indexKey), String(i + 1), '1500']));
  for (const c of writers) t.same(await c.next(), { ready: true });
  for (const c of writers) c.send('go');
  const mine = { writes: 0, wins: 0, loads: new Set<number>(), retries: new Set<number>() };
  const hosts = hostsBefore.map((h) => h.index);
  const until = Date.now() + 1500;
  for (let seq = 1; Date.now() < until; seq++) {
    for (const h of hosts) {
      const cur = before.getHostLoad(h);
      mine.loads.add(cur);
      mine.writes++;
      if (before.setHostLoad(h, cur, encodeLoad(N, seq))) mine.wins++;
      const rt = before.getRetryAt(h);
      mine.retries.add(rt);
      before.setRetryAt(h, rt, encodeLoad(N, seq) * 1000);
    }
  }
  const results = [
    ...(await Promise.all(writers.map((c) => c.next<{ writes: number; wins: number; loads: number[]; retries: number[] }>()))),
    { writes: mine.writes, wins: mine.wins, loads: [...mine.loads], retries: [...mine.retries] },
  ];
  await Promise.all(writers.map((c) => (c.proc.exitCode === null ? once(c.proc, 'exit') : undefined)));

  const validLoad = (v: number) => v === 0 || ((v & 0xff) >= 1 && (v & 0xff) <= N && v >>> 8 > 0);
  const validRetry = (v: number) => v === 0 || (v % 1000 === 0 && validLoad(v / 1000));
  let writes = 0;
  let wins = 0;
  const writersSeen = new Set<number>();
  for (const r of results) {
    writes += r.writes;
    wins += r.wins;
    t.ok(r.wins <= r.writes);
    const badLoads = r.loads.filter((v) => !validLoad(v));
    const badRetries = r.retries.filter((v) => !validRetry(v));
    t.same(badLoads, [], 'every load read is one a writer wrote');
    t.same(badRetries, [], 'every retry time read is one a writer wrote');
    for (const v of r.loads) if (v) writersSeen.add(v & 0xff);
  }
  t.ok(writes > 1000, `${writes} CAS writes`);
  t.ok(wins > 0, `${wins} won`);
  t.ok(writersSeen.size >= 2, 'the writers saw each other\'s values');
  // the final state: every field of every host intact
  for (const h of hostsBefore) {
    t.ok(validLoad(before.getHostLoad(h.index)), `host ${h.index} load valid`);
    t.ok(validRetry(before.getRetryAt(h.index)), `host ${h.index} retry time valid`);
  }
  t.same(before.hosts('N0'), hostsBefore, 'ip, port, invalid untouched');
  t.equal(before.kv('N0', 'v'), '1');
  before.close();
  w.removeAll();
});

t.test('ipcs -m shows nothing of the home after removeAll', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const w = new ConfigSpaceWriter(indexKey);
  for (let i = 1; i <= 4; i++) w.publish(childBundle(i), settings);
  const reader = spawnChild(t, ['read', String(indexKey)]);
  t.match(await reader.next(), { attached: { generation: 4 } });
  t.equal((await segmentsOfHome(home)).length, 5);
  t.same(w.collectGarbage().length, 3);
  w.removeAll();
  const mine = (await listSegments()).filter((s) => s.key >= indexKey && s.key <= indexKey + 255);
  t.same(mine, [], 'no segment of the key block (removed ones lose their key at once)');
  reader.send('detach');
  await reader.next();
  reader.send('exit');
  await once(reader.proc, 'exit');
  // `ipcs -m` itself, as an operator would check
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ipcs', ['-m'], { encoding: 'utf8' });
  const keys = out.split('\n').map((l) => l.split(/\s+/)[0]).filter((k) => k?.startsWith('0x')).map((k) => Number.parseInt(k!, 16));
  t.same(keys.filter((k) => k >= indexKey && k <= indexKey + 255), []);
});

t.test('a process that opens and closes the space per call keeps its mappings bounded', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const writer = spawnChild(t, ['publish', String(indexKey)]);
  writer.send({ bundles: [childBundle(1)], settings });
  const { published } = await writer.next<{ published: { key: number; generation: number }[] }>();
  await once(writer.proc, 'exit');
  const key = published[0]!.key;
  const perCall = () => {
    const r = ConfigSpace.openKey(indexKey);
    const v = r.kv('N0', 'v');
    r.close();
    return v;
  };
  const shmid = shmidOf(key);
  for (let i = 0; i < 30; i++) t.equal(perCall(), '1');
  t.equal(attachCount(key), 2, 'calls in quick succession share one attachment (mapping + pin)');
  t.same(attachmentInfo(shmid), { users: 0, kept: false, lingering: true }, 'lingering after close');
  await waitFor('the lingering attachment to go', () => attachCount(key) === 0, 5000);
  t.equal(attachmentInfo(shmid), undefined);
  for (let i = 0; i < 30; i++) perCall();
  t.equal(attachCount(key), 2, 'attached again after a pause: one attachment, not one per call');
  t.same(attachmentInfo(shmid), { users: 0, kept: true, lingering: false }, 'sticky: shm-typed-array could not unmap it anyway');
  t.equal(attachCount(indexKey), 2, 'the index: one attachment for the life of the process');
  const w = new ConfigSpaceWriter(indexKey);
  w.removeAll();
  t.equal(shmidOf(key), -1);
});

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { Segment, Semaphore, attachCount, destroySegment, shmidOf } from '../../lib/shm/sysv.js';
import { ROOT, removeHomeIpc } from '../helpers/procs.js';

const home = t.testdir();
const base = homeKeyBase(home);
t.teardown(() => removeHomeIpc(home));

t.test('keys of a home are a stable block', async (t) => {
  t.equal(homeKeyBase(home), base);
  t.equal(base & 0xff, 0);
  t.ok(base > 0 && base < 0x80000000);
  t.not(homeKeyBase(`${home}-other`), base);
});

t.test('a pinned segment survives detach and the exit of every process', async (t) => {
  const key = base + KEY_SLOT.CONFIG_FIRST;
  const s = Segment.create(key, 100)!;
  t.ok(s, 'created');
  t.equal(Segment.create(key, 100), undefined, 'key taken → undefined');
  t.equal(s.buf.length, 104, 'rounded up to 8');
  s.buf.write('ECIF', 0);
  Atomics.store(s.i32, 4, 42);
  t.equal(attachCount(key), 2, 'mapping + pin');
  s.detach();
  s.detach();
  t.ok(shmidOf(key) >= 0, 'still there after the creator detached');
  // another process attaches, reads, and exits without detaching: shm-typed-array's exit hook must not remove it
  const script = `import('${ROOT}/dist/lib/shm/sysv.js').then((m) => { const s = m.Segment.attach(${key}); process.stdout.write(s.buf.toString('utf8', 0, 4) + Atomics.load(s.i32, 4)); })`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.stdout, 'ECIF42', r.stderr);
  t.ok(shmidOf(key) >= 0, 'still there after a reader process exited');
  t.equal(attachCount(key), 0);
  t.ok(destroySegment(key), 'explicit removal');
  t.equal(shmidOf(key), -1);
  t.equal(Segment.attach(key), undefined, 'attach of a missing key → undefined');
});

t.test('a segment detached by a process is not removed when that process exits', async (t) => {
  const key = base + KEY_SLOT.CONFIG_FIRST + 1;
  const script = `import('${ROOT}/dist/lib/shm/sysv.js').then((m) => { const s = m.Segment.create(${key}, 64); s.buf.write('kept', 0); s.detach(); const r = m.Segment.attach(${key}); r.detach(); })`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  t.ok(shmidOf(key) >= 0, 'still there');
  const s = Segment.attach(key)!;
  t.equal(s.buf.toString('utf8', 0, 4), 'kept');
  s.detach();
  t.ok(destroySegment(key));
});

t.test('semaphore mutex: trylock, unlock, released when the holder dies', async (t) => {
  const sem = Semaphore.open(base + KEY_SLOT.ACCEPT_LOCK, true);
  t.equal(sem.value(), 1);
  t.ok(sem.tryLock());
  t.notOk(sem.tryLock(), 'held');
  sem.unlock();
  const script = `import('${ROOT}/dist/lib/shm/sysv.js').then((m) => { const s = m.Semaphore.open(${sem.key}, false); process.stdout.write(String(s.tryLock())); process.exit(0); })`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.stdout, 'true', r.stderr);
  t.equal(sem.value(), 1, 'SEM_UNDO gave it back when the holder exited');
  await sem.lock();
  t.equal(sem.value(), 0);
  sem.unlock();
  t.equal(sem.lockWithin(50), 'locked', 'lockWithin takes a free lock');
  t.equal(sem.value(), 0);
  t.equal(sem.lockWithin(50), 'timeout', 'and gives up after its round while the lock is held');
  sem.unlock();
  t.equal(sem.value(), 1, 'unlock with the prebuilt sembuf');
  sem.remove();
  t.throws(() => sem.lockWithin(10), { code: 'IBP_ERR_SHM_SYSCALL' }, 'a removed lock throws');
});

// The participant log (ibas/participant-log.ts): the first record of a gtrid is created once
// (a tombstone and a PREPARED race: one wins, the other sees it), updates replace it whole, the
// decision lock refuses a live holder and takes over a dead one, compaction keeps what is in doubt.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ParticipantLog, type ParticipantRecord } from '../../ibas/participant-log.js';

const rec = (gtrid: string, state: ParticipantRecord['state'], at = Date.now()): ParticipantRecord => ({
  gtrid, state, app: 'a', journal: 'j', clientNode: 'CLI', clientIp: '127.0.0.1', preparedAt: at, ...(state === 'PREPARED' ? {} : { decidedAt: at }),
});

t.test('create once, update whole, list what is in doubt', async (t) => {
  const log = new ParticipantLog(t.testdir());
  t.equal(fs.statSync(log.dir).mode & 0o777, 0o700);
  t.equal(log.create(rec('G1', 'PREPARED')), true);
  t.equal(log.create(rec('G1', 'ROLLED_BACK')), false, 'a second first record is refused');
  t.equal(log.get('G1')!.state, 'PREPARED', 'the first one stands');
  t.equal(log.get('G-none'), undefined);
  log.create(rec('G2', 'PREPARED'));
  log.update({ ...log.get('G2')!, state: 'COMMITTED', decidedAt: Date.now(), appRc: 0, body: Buffer.from('ok').toString('base64') });
  t.same(log.inDoubt().map((r) => r.gtrid), ['G1']);
  t.same(fs.readdirSync(log.dir).sort(), ['G1.json', 'G2.json'], 'no temp files left');
  t.throws(() => log.get('../x'), { code: 'IBP_ERR_TX_GTRID' }, 'a gtrid is never a path');
  fs.writeFileSync(path.join(log.dir, 'G3.json'), '{"torn');
  t.throws(() => log.get('G3'), { code: 'IBP_ERR_TX_LOG' }, 'an altered record is reported, not guessed');
  t.same(log.list().map((r) => r.gtrid), ['G1', 'G2'], 'and skipped by the listing');
});

t.test('the decision lock: busy while its holder lives, taken over from a dead one', async (t) => {
  const log = new ParticipantLog(t.testdir());
  const lock = path.join(log.dir, 'G1.lock');
  t.equal(log.withLock('G1', () => {
    t.equal(fs.readFileSync(lock, 'utf8'), String(process.pid), 'the lock holds the pid');
    t.throws(() => log.withLock('G1', () => 1), { code: 'IBP_ERR_TX_BUSY' }, 'held: busy');
    return 7;
  }), 7);
  t.notOk(fs.existsSync(lock), 'released');
  fs.writeFileSync(lock, String(process.ppid)); // a live process (our parent)
  t.throws(() => log.withLock('G1', () => 1), { code: 'IBP_ERR_TX_BUSY' });
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.writeFileSync(lock, dead);
  t.equal(log.withLock('G1', () => 'mine'), 'mine', `a lock of dead pid ${dead} is taken over`);
});

t.test('compaction: decided records older than the window go, in-doubt ones stay', async (t) => {
  const log = new ParticipantLog(t.testdir());
  const old = Date.now() - 48 * 3600 * 1000;
  log.create(rec('OLD-PREPARED', 'PREPARED', old));
  log.create(rec('OLD-DONE', 'COMMITTED', old));
  log.create(rec('NEW-DONE', 'ROLLED_BACK'));
  t.equal(log.compact(), 1);
  t.same(log.list().map((r) => r.gtrid).sort(), ['NEW-DONE', 'OLD-PREPARED']);
});

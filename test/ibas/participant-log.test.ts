// The participant log (ibas/participant-log.ts): one record per branch (gtrid + journal), so two
// legs of one gtrid on one server each have theirs; the first record of a branch is created once
// (a tombstone and a PREPARED race: one wins, the other sees it), updates replace it whole, the
// decision lock (per branch) refuses a live holder and takes over a dead one, compaction keeps what
// is in doubt.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { branchFileName, ParticipantLog, type ParticipantRecord } from '../../ibas/participant-log.js';

const rec = (gtrid: string, state: ParticipantRecord['state'], at = Date.now(), journal = 'j'): ParticipantRecord => ({
  gtrid, state, app: 'a', journal, clientNode: 'CLI', clientIp: '127.0.0.1', preparedAt: at, ...(state === 'PREPARED' ? {} : { decidedAt: at }),
});

t.test('create once, update whole, list what is in doubt', async (t) => {
  const log = new ParticipantLog(t.testdir());
  t.equal(fs.statSync(log.dir).mode & 0o777, 0o700);
  t.equal(log.create(rec('G1', 'PREPARED')), true);
  t.equal(log.create(rec('G1', 'ROLLED_BACK')), false, 'a second first record of the branch is refused');
  t.equal(log.get('G1', 'j')!.state, 'PREPARED', 'the first one stands');
  t.equal(log.get('G-none', 'j'), undefined);
  t.equal(log.get('G1', 'other'), undefined, 'another branch of the gtrid has no record');
  log.create(rec('G2', 'PREPARED'));
  log.update({ ...log.get('G2', 'j')!, state: 'COMMITTED', decidedAt: Date.now(), appRc: 0, body: Buffer.from('ok').toString('base64') });
  t.same(log.inDoubt().map((r) => r.gtrid), ['G1']);
  t.same(fs.readdirSync(log.dir).sort(), [`${branchFileName('G1', 'j')}.json`, `${branchFileName('G2', 'j')}.json`], 'no temp files left');
  t.throws(() => log.get('../x', 'j'), { code: 'IBP_ERR_TX_GTRID' }, 'a gtrid is never a path');
  fs.writeFileSync(path.join(log.dir, `${branchFileName('G3', 'j')}.json`), '{"torn');
  t.throws(() => log.get('G3', 'j'), { code: 'IBP_ERR_TX_LOG' }, 'an altered record is reported, not guessed');
  t.same(log.list().map((r) => r.gtrid), ['G1', 'G2'], 'and skipped by the listing');
});

t.test('branches: two legs of one gtrid, whatever their journals hold', async (t) => {
  const log = new ParticipantLog(t.testdir());
  const odd = '../../etc/passwd\u0000 ünï/cøde';
  t.match(branchFileName('G.1', odd), /^G\.1\.[0-9a-f]{16}$/, 'the journal is hashed into the name');
  t.not(branchFileName('G.1', 'J1'), branchFileName('G.1', 'J2'));
  t.equal(log.create(rec('G.1', 'PREPARED', 1, 'J1')), true);
  t.equal(log.create(rec('G.1', 'PREPARED', 2, odd)), true, 'a second leg of the gtrid prepares too');
  t.equal(log.create(rec('G.1x', 'PREPARED', 3, 'J1')), true);
  t.equal(log.get('G.1', odd)!.journal, odd, 'the journal is kept in the record');
  t.same(log.branches('G.1').map((r) => r.journal), ['J1', odd], 'the branches of one gtrid, not of another starting alike');
  t.same(log.inDoubt().map((r) => [r.gtrid, r.journal]), [['G.1', 'J1'], ['G.1', odd], ['G.1x', 'J1']]);
  t.equal(log.withLock('G.1', 'J1', () => log.withLock('G.1', odd, () => 'both')), 'both', 'each branch has its own decision lock');
});

t.test('the decision lock: busy while its holder lives, taken over from a dead one', async (t) => {
  const log = new ParticipantLog(t.testdir());
  const lock = path.join(log.dir, `${branchFileName('G1', 'J')}.lock`);
  t.equal(log.withLock('G1', 'J', () => {
    t.equal(fs.readFileSync(lock, 'utf8'), String(process.pid), 'the lock holds the pid');
    t.throws(() => log.withLock('G1', 'J', () => 1), { code: 'IBP_ERR_TX_BUSY' }, 'held: busy');
    return 7;
  }), 7);
  t.notOk(fs.existsSync(lock), 'released');
  fs.writeFileSync(lock, String(process.ppid)); // a live process (our parent)
  t.throws(() => log.withLock('G1', 'J', () => 1), { code: 'IBP_ERR_TX_BUSY' });
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.writeFileSync(lock, dead);
  t.equal(log.withLock('G1', 'J', () => 'mine'), 'mine', `a lock of dead pid ${dead} is taken over`);
});

t.test('compaction: decided records older than the window go, in-doubt ones stay', async (t) => {
  const log = new ParticipantLog(t.testdir());
  const old = Date.now() - 48 * 3600 * 1000;
  log.create(rec('OLD-PREPARED', 'PREPARED', old));
  log.create(rec('OLD-DONE', 'COMMITTED', old));
  log.create(rec('OLD-DONE', 'PREPARED', old, 'j2'));
  log.create(rec('NEW-DONE', 'ROLLED_BACK'));
  t.equal(log.compact(), 1);
  t.same(log.list().map((r) => `${r.gtrid}/${r.journal}`).sort(), ['NEW-DONE/j', 'OLD-DONE/j2', 'OLD-PREPARED/j'], 'a decided branch goes, its in-doubt sibling stays');
});

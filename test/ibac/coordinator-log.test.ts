// The coordinator log (ibac/coordinator-log.ts): records checksummed one per line, a torn or
// corrupt tail detected and ignored, transactions folded from the records, compaction keeping
// only the unfinished ones, the file removed on close when nothing is unfinished; and the gtrid form.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { CoordinatorLog, decodeRecords, encodeRecord, foldRecords, readLog, type CoordRecord } from '../../ibac/coordinator-log.js';
import { checkGtrid, newGtrid } from '../../lib/gtrid.js';

const parts = [{ node: 'N1', app: 'a', host: '127.0.0.1:1', journal: 'j1' }, { node: 'N2', app: 'a', host: '127.0.0.1:2', journal: 'j2' }];

t.test('records round trip; a torn or corrupt tail is ignored, never misread', async (t) => {
  const recs: CoordRecord[] = [
    { t: 'BEGIN', gtrid: 'G1', at: 1, parts },
    { t: 'DECISION', gtrid: 'G1', at: 2, decision: 'COMMIT' },
    { t: 'ACK', gtrid: 'G1', at: 3, i: 0, outcome: 'OK' },
  ];
  const text = recs.map(encodeRecord).join('');
  t.same(decodeRecords(text), { records: recs, ignoredBytes: 0 });
  // every cut inside the last record: the first two survive, the rest is ignored
  const lastStart = text.length - encodeRecord(recs[2]!).length;
  for (let cut = lastStart; cut < text.length; cut++) {
    const r = decodeRecords(text.slice(0, cut));
    t.same(r.records, recs.slice(0, 2), `cut at ${cut}`);
    t.equal(r.ignoredBytes, cut - lastStart);
  }
  // a flipped byte inside the DECISION: it and everything after it are ignored
  const bad = text.slice(0, lastStart - 10) + (text[lastStart - 10] === 'x' ? 'y' : 'x') + text.slice(lastStart - 9);
  t.same(decodeRecords(bad).records, recs.slice(0, 1), 'a corrupt record ends the log');
  const txs = foldRecords(decodeRecords(bad).records);
  t.equal(txs.get('G1')!.decision, undefined, 'so the decision counts as not logged (presumed abort)');
  t.same([...foldRecords(recs).get('G1')!.acked], [[0, 'OK']]);
});

t.test('the process log: fsync-ed appends, compaction, kept while unfinished', async (t) => {
  const root = t.testdir();
  const log = CoordinatorLog.of(root);
  t.equal(CoordinatorLog.of(root), log, 'one log per process and home');
  t.ok(path.basename(log.file).startsWith(`coord-${process.pid}-`));
  log.begin('G1', parts);
  log.decide('G1', 'COMMIT');
  log.begin('G2', parts);
  log.ack('G1', 0, 'OK');
  log.ack('G1', 1, 'OK');
  log.end('G1');
  const before = foldRecords(readLog(log.file).records);
  t.same([...before.keys()], ['G1', 'G2']);
  t.equal(before.get('G1')!.ended, true);
  fs.appendFileSync(log.file, '0123456789abcdef {"t":"END","gtr'); // a torn tail
  t.equal(readLog(log.file).ignoredBytes, 32);
  log.compact();
  const after = readLog(log.file);
  t.same(after.ignoredBytes, 0, 'the rewrite drops the torn tail');
  t.same([...foldRecords(after.records).keys()], ['G2'], 'only the unfinished transaction is kept');
  t.same(log.unfinished().map((x) => x.gtrid), ['G2']);
  log.decide('G2', 'ROLLBACK');
  t.equal(foldRecords(readLog(log.file).records).get('G2')!.decision, 'ROLLBACK', 'appends go on after compaction');
  log.close();
  t.ok(fs.existsSync(log.file), 'kept on close while G2 is unfinished');
});

t.test('gtrid: generated unique and file-safe, bad ones refused', async (t) => {
  const a = newGtrid('CLI');
  const b = newGtrid('CLI');
  t.not(a, b);
  t.match(a, /^CLI\.[0-9a-z]+\.[0-9a-z]+\.[0-9a-f]{12}$/);
  t.doesNotThrow(() => checkGtrid(newGtrid('../weird node/')), 'a node name with odd characters still gives a valid gtrid');
  t.doesNotThrow(() => checkGtrid(newGtrid('_x'.repeat(40))), 'a long node name is cut');
  for (const bad of ['', '../x', 'a/b', '.x', 'x'.repeat(65), 'a..b']) t.throws(() => checkGtrid(bad), { code: 'IBP_ERR_TX_GTRID' }, JSON.stringify(bad));
});

// ibas/tx-log.ts writes the transaction line as JSON text itself (lib/log.ts writeRecord): the
// line must be exactly the record pino writes for the same fields (every key, value and order but
// the time), also for awkward strings, a failure reason and send-ahead; a logger above info
// writes nothing; buffered lines (bufferBytes) reach the file at flushLogs and before a warn.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger, flushLogs } from '../../lib/log.js';
import { TxLog, type TxRecord } from '../../ibas/tx-log.js';
import { resultName } from '../../lib/protocol/result-codes.js';

const base: TxRecord = { journal: 'J-1', app: 'ibp_test_echo', clientNode: 'node', clientIp: '127.0.0.1', clientPort: 5555, rc: 0, appRc: 0, receiveUs: 10, appUs: 3, sendUs: 4, via: 'binary' };

/** What TxLog wrote before writeRecord: the object handed to pino. */
function pinoFields(r: TxRecord): Record<string, unknown> {
  const f: Record<string, unknown> = {
    kind: 'transaction', journal: r.journal, ...(r.gtrid ? { gtrid: r.gtrid } : {}), app: r.app, rc: r.rc, rc_name: resultName(r.rc), app_rc: r.appRc,
    client: { node: r.clientNode, ip: r.clientIp, port: r.clientPort },
    timings: { receive_us: r.receiveUs, app_us: r.appUs, send_us: r.sendUs, total_us: r.receiveUs + r.appUs + r.sendUs },
    via: r.via,
  };
  if (r.sentAhead) f.sent_ahead = true;
  if (r.rc !== 0) f.reason = r.message ?? '';
  return f;
}

const withoutTime = (line: string): string => line.replace(/,"time":"[^"]*"/, '');

/** IBP's message shape, built here on its own (the line's msg must be exactly this). */
function ibpMessage(r: TxRecord): string {
  let m = `transaction , journal[${r.journal}]${r.gtrid ? ` gtrid[${r.gtrid}]` : ''} app[${r.app}] client[${r.clientNode ? `${r.clientNode} ` : ''}${r.clientIp}:${r.clientPort}] rc[${r.rc} ${resultName(r.rc)}] app_rc[${r.appRc}]`;
  m += ` receive_us[${r.receiveUs}] app_us[${r.appUs}] send_us[${r.sendUs}] via[${r.via}]${r.sentAhead ? ' sent_ahead[1]' : ''}`;
  if (r.rc !== 0) m += ` reason[${r.message ?? ''}]`;
  return m;
}

t.test('the line is the record pino writes for the same fields', async (t) => {
  const dir = t.testdir();
  const cases: TxRecord[] = [
    base,
    { ...base, journal: 'quote " backslash \\ newline \n tab \t é 😀 \u0001', clientNode: '' },
    { ...base, rc: 4001, appRc: 7, message: 'app failed: "x"\nsecond line' },
    { ...base, sentAhead: true, via: 'http' },
    { ...base, gtrid: 'coord-1:G"7' },
    { ...base, app: 'app"\\é', clientNode: 'n\u2028"', journal: '\ud83d\ude00', rc: 4001, appRc: 2, message: '' },
  ];
  for (const [i, r] of cases.entries()) {
    const a = path.join(dir, `a${i}.log`);
    const b = path.join(dir, `b${i}.log`);
    const la = createLogger({ name: 'ibas', file: a, base: { role: 'worker', slot: 1, generation: 2 } });
    const lb = createLogger({ name: 'ibas', file: b, base: { role: 'worker', slot: 1, generation: 2 } });
    new TxLog(la).record(r);
    const msg = fs.readFileSync(a, 'utf8');
    lb.info(pinoFields(r), ibpMessage(r));
    const want = fs.readFileSync(b, 'utf8');
    t.equal(withoutTime(msg), withoutTime(want), `case ${i}: the same line`);
    t.ok(msg.endsWith('}\n') && JSON.parse(msg).kind === 'transaction', `case ${i}: one JSON line`);
    if (r.clientNode === '') t.match(JSON.parse(msg).msg, / client\[127\.0\.0\.1:5555\] /, `case ${i}: no node, no stray space: client[ip:port]`);
  }
});

t.test('one TxLog over many records: the parts it keeps never leak into the next line', async (t) => {
  // one connection after another from the same client (a new port each), another client, another
  // app and result: every line must still be the one pino writes for that record alone
  const dir = t.testdir();
  const seq: TxRecord[] = [
    base,
    { ...base, clientPort: 5556, journal: 'J-2' },
    { ...base, clientPort: 1, journal: 'J-3', rc: 4001, appRc: 9, message: 'no' },
    { ...base, clientIp: '127.0.0.9', clientPort: 5556 },
    { ...base, clientNode: 'other', clientIp: '127.0.0.9', clientPort: 5556 },
    { ...base, app: 'ibp_test_file', clientPort: 65535 },
    base,
  ];
  const a = path.join(dir, 'seq.log');
  const la = createLogger({ name: 'ibas', file: a, base: { role: 'worker', slot: 1, generation: 2 } });
  const tx = new TxLog(la);
  for (const r of seq) tx.record(r);
  const got = fs.readFileSync(a, 'utf8').trim().split('\n');
  t.equal(got.length, seq.length, 'one line per record');
  for (const [i, r] of seq.entries()) {
    const b = path.join(dir, `want${i}.log`);
    createLogger({ name: 'ibas', file: b, base: { role: 'worker', slot: 1, generation: 2 } }).info(pinoFields(r), ibpMessage(r));
    t.equal(withoutTime(got[i]! + '\n'), withoutTime(fs.readFileSync(b, 'utf8')), `record ${i}: port ${r.clientPort} client ${r.clientNode}`);
  }
});

t.test('above info nothing is written; buffered lines go out at flushLogs and before a warn line', async (t) => {
  const dir = t.testdir();
  const quiet = path.join(dir, 'quiet.log');
  new TxLog(createLogger({ name: 'ibas', level: 'warn', file: quiet })).record(base);
  t.equal(fs.existsSync(quiet) ? fs.readFileSync(quiet, 'utf8') : '', '', 'level warn: no transaction line');

  const file = path.join(dir, 'w.log');
  const event = path.join(dir, 'event.log');
  const log = createLogger({ name: 'ibas', file, eventFile: event, bufferBytes: 4096 });
  const tx = new TxLog(log);
  tx.record(base);
  t.equal(fs.readFileSync(file, 'utf8'), '', 'held in memory');
  flushLogs();
  t.equal(fs.readFileSync(file, 'utf8').split('\n').length - 1, 1, 'written by flushLogs');
  for (let i = 0; i < 3; i++) tx.record(base);
  log.warn('something to see');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 5, 'a warn line writes the held lines first');
  t.match(lines[4], /something to see/, 'then itself');
  t.equal(fs.readFileSync(event, 'utf8').trim().split('\n').length, 1, 'the event log has the warn line only');
  let n = 0;
  while (fs.readFileSync(file, 'utf8').split('\n').length - 1 === 5 && n < 100) {
    tx.record(base);
    n++;
  }
  t.ok(n > 1 && n < 20, `the buffer is written once it holds 4 KiB (${n} lines)`);
});

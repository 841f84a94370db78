import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createLogger, isoTime } from '../../lib/log.js';

t.test("isoTime gives pino's isoTime text for the current millisecond, also when called again", async (t) => {
  for (let i = 0; i < 2000; i++) {
    const before = Date.now();
    const ours = isoTime();
    const again = isoTime();
    const after = Date.now();
    if (before === after) t.equal(again, ours, 'a second call in the same ms gives the same text');
    const m = /^,"time":"(.*)"$/.exec(ours);
    if (!m) return t.fail(`shape: ${ours}`);
    const ms = Date.parse(m[1]!);
    if (ms < before || ms > after) return t.fail(`time ${m[1]} outside [${before}, ${after}]`);
    // the same shape as pino's own (for a time within the same window)
    t.match(pino.stdTimeFunctions.isoTime(), /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
    t.match(ours, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 2)); // cross millisecond boundaries
  }
});

t.test('a log line carries the time of the moment it was written', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'x.log');
  const log = createLogger({ name: 't', file });
  const t0 = Date.now();
  log.info('first');
  await new Promise((r) => setTimeout(r, 20));
  const t1 = Date.now();
  log.info('second');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { time: string; msg: string; level: string });
  t.equal(lines.length, 2);
  t.equal(lines[0]!.level, 'info');
  t.ok(Date.parse(lines[0]!.time) >= t0 && Date.parse(lines[0]!.time) < t1, 'first line: its own time');
  t.ok(Date.parse(lines[1]!.time) >= t1, 'second line: a later time, not the cached one');
});

// The connection phases and their deadlines (ibas/deadlines.ts): which phase a wait is in and
// until when — absolute deadlines that trickled bytes never extend — and the contract with
// ibas.conf and docs/ibas.md (every phase's key is a config key, documented).
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { IbasConf, commOf } from '../../lib/config/ibas-conf.js';
import { PHASES, PHASE_KEY, ReadClock, phaseMs } from '../../ibas/deadlines.js';
import { ROOT } from '../helpers/procs.js';

const base = { server: { ip: '127.0.0.1', port: 1 }, mpm: { mode: 'STATIC_WORKERPOOL', max_count: 1, DYNAMIC_WORKERPOOL: { min_idle_count: 1, max_idle_count: 1, create_interval: 1, destroy_interval: 1 }, max_process_count: 0 }, security: { sign_flag: 0, compress_flag: 0, encrypt_flag: 0 }, app: { max_so_cache_count: 1 }, log: { level: 'info' }, ibma: { config_filename: 'ibma.conf' } } as unknown as IbasConf;

t.test('defaults and the old key name', async (t) => {
  const c = commOf(base);
  t.match(c, { headerTimeoutMs: 5000, requestTimeoutMs: 30_000, keepaliveTimeoutMs: 60_000, sendTimeoutMs: 10_000, maxFilesBytes: 64 * 1024 * 1024 });
  t.equal(commOf({ ...base, comm: { idle_timeout: 7 } }).keepaliveTimeoutMs, 7000, 'comm.idle_timeout is the old name of keepalive_timeout');
  t.equal(commOf({ ...base, comm: { idle_timeout: 7, keepalive_timeout: 3 } }).keepaliveTimeoutMs, 3000, 'keepalive_timeout wins');
  for (const p of PHASES) t.ok(phaseMs(c, p) > 0, `${p} has a deadline`);
});

t.test('each phase key is in the schema and in docs/ibas.md', async (t) => {
  const commKeys = Object.keys((IbasConf.properties.comm as unknown as { properties: Record<string, unknown> }).properties);
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'ibas.md'), 'utf8');
  for (const p of PHASES) {
    const key = PHASE_KEY[p];
    t.ok(commKeys.includes(key.replace(/^comm\./, '')), `${key} is an ibas.conf key`);
    t.match(doc, `| \`${key}\` |`, `${key} is documented`);
  }
  t.match(doc, '| `comm.max_files_bytes` |', 'comm.max_files_bytes is documented');
});

t.test('the read clock: phases and absolute deadlines', async (t) => {
  const c = commOf({ ...base, comm: { header_timeout: 5, request_timeout: 30, keepalive_timeout: 60 } });
  const clock = new ReadClock(c, 1000);
  t.same(clock.deadline('IDLE'), { phase: 'HEADER', at: 6000 }, 'a new connection that sends nothing: HEADER from open');
  clock.started(4000);
  t.same(clock.deadline('HEADER'), { phase: 'HEADER', at: 6000 }, 'bytes of the first header do not extend it');
  t.same(clock.deadline('REQUEST'), { phase: 'REQUEST', at: 34_000 }, 'REQUEST from the first byte');
  clock.idle(10_000);
  t.same(clock.deadline('IDLE'), { phase: 'KEEPALIVE', at: 70_000 }, 'between transactions: KEEPALIVE from the end of the last');
  clock.started(50_000);
  t.same(clock.deadline('HEADER'), { phase: 'HEADER', at: 55_000 }, 'a later transaction: HEADER from its first byte');
  const short = new ReadClock(commOf({ ...base, comm: { header_timeout: 50, request_timeout: 2 } }), 0);
  short.started(0);
  t.same(short.deadline('HEADER'), { phase: 'REQUEST', at: 2000 }, 'the earlier of the header and request deadlines applies');
});

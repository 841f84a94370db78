/**
 * Bounded memory against hostile peers (issue 11): lz4 bodies that lie about their size get 413
 * before anything is allocated, decoded bodies held at once are bounded (503 past
 * comm.max_decode_total), and 48 concurrent bombs do not raise a real ibms worker's RSS by more
 * than 64 MB.
 */
import fs from 'node:fs';
import http from 'node:http';
import t from 'tap';
import { lz4Bomb } from '../helpers/lz4-bomb.js';
import { makeDaemon } from './daemon-fixture.js';
import { makeFixture, SAMPLE } from './fixture.js';

const MB = 1024 * 1024;

t.test('inject: a body expanding past its declared size or the limit is 413; past the decode budget 503', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE), conf: (c) => void (c.comm.max_decode_total = 64 * 1024) });
  const post = (body: Buffer) => f.app.inject({ method: 'POST', url: '/v1/nodes', headers: { ...f.auth, 'content-type': 'application/json', 'content-encoding': 'lz4' }, payload: body });
  const lies = await post(lz4Bomb(1000, 50 * MB));
  t.equal(lies.statusCode, 413);
  t.equal(lies.json().code, 'IBP_ERR_CODEC_EXPANDS');
  const over = await post(lz4Bomb(f.conf.comm.max_body_size + 1, 30));
  t.equal(over.statusCode, 413);
  t.equal(over.json().code, 'IBP_ERR_CODEC_TOO_LARGE');
  const busy = await post(lz4Bomb(128 * 1024, 128 * 1024));
  t.equal(busy.statusCode, 503, 'an honest body larger than the whole decode budget');
  t.equal(busy.json().code, 'IBP_ERR_CODEC_BUSY');
  const okBody = Buffer.from(JSON.stringify({ node: 'ZIP', kvs: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'x'.repeat(1000)])) }));
  const { lz4Compress } = await import('../../lib/codec/lz4.js');
  const fine = await post(lz4Compress(okBody)!);
  t.equal(fine.statusCode, 201, `a real lz4 body within the budget is served (${fine.body.slice(0, 200)})`);
  t.equal((await f.call('GET', '/v1/status')).status, 200, 'and the budget was given back (nothing held)');
  const again = await post(lz4Compress(Buffer.from(JSON.stringify({ node: 'ZIP2', kvs: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'y'.repeat(4000)])) })))!);
  t.equal(again.statusCode, 201, 'successive bodies each fit again');
});

function vmRssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

t.test('48 concurrent lz4 bombs against a real daemon: all 413, RSS of the worker up by at most 64 MB', async (t) => {
  const d = await makeDaemon(t);
  const status = JSON.parse((await d.http('GET', '/v1/status')).body.toString()) as { pid: number };
  const pid = status.pid;
  t.ok(pid > 0 && pid !== process.pid, `worker pid ${pid}`);
  // warm up the paths once so first-use allocations are not counted
  await d.http('POST', '/v1/nodes', { body: lz4Bomb(1000, 10_000), headers: { 'content-type': 'application/json', 'content-encoding': 'lz4' } });
  const before = vmRssKb(pid);
  const declared = 8 * MB; // comm.max_body_size of the defaults
  const send = (body: Buffer): Promise<number> => new Promise((resolve, reject) => {
    const req = http.request({ host: d.ip, port: d.port, method: 'POST', path: '/v1/nodes', agent: false, headers: { authorization: `Bearer ${d.admin}`, 'content-type': 'application/json', 'content-encoding': 'lz4', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
  let peak = before;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, vmRssKb(pid));
    } catch {
      // gone: the assertions below fail
    }
  }, 5);
  try {
    // bombs that lie: declare 8 MiB, expand to 64 MiB (~256 KB on the wire each)
    const lying = await Promise.all(Array.from({ length: 48 }, () => send(lz4Bomb(declared, 64 * MB))));
    t.same([...new Set(lying)], [413], 'every lying bomb is refused with 413');
    // honest bombs: 8 MiB of whitespace around `{}` (~32 KB each), valid lz4 and valid JSON
    const honest = await Promise.all(Array.from({ length: 48 }, () => send(lz4Bomb(declared, declared, true))));
    t.ok(honest.every((s) => s === 400 || s === 503), `every honest bomb is refused by the schema or the decode budget (${[...new Set(honest)].join(' ')})`);
  } finally {
    clearInterval(sampler);
  }
  const after = vmRssKb(pid);
  peak = Math.max(peak, after);
  t.ok(peak - before <= 64 * 1024, `RSS before ${before} kB, peak ${peak} kB, after ${after} kB: up ${peak - before} kB (≤ 65536)`);
  t.equal((await d.http('GET', '/v1/status')).status, 200, 'the daemon still answers');
});

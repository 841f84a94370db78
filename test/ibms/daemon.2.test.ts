/** The real daemon (2/2): graceful stop with a held watch, bad input survival, USR1. */
import fs from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { processesOfHome, waitFor } from '../helpers/procs.js';
import { ibmsPids, makeDaemon } from './daemon-fixture.js';
import { SAMPLE } from './fixture.js';

t.test('stop finishes requests in flight: a held watch is answered, not cut', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE) });
  const cred = (await d.ok('-s', 'node_credential', '--node', 'ECIF')).trim();
  t.match(cred, /^[0-9a-f]{64}$/, 'the credential alone on stdout');
  const first = await d.http('GET', '/v1/agent/config?node=ECIF', { headers: { authorization: `Bearer ${cred}` } });
  const epoch = String(first.headers['x-ibp-epoch']);
  const index = String(first.headers['x-ibp-index']);
  const held = d.http('GET', `/v1/agent/config?node=ECIF&index=${index}&epoch=${epoch}&wait=120`, { headers: { authorization: `Bearer ${cred}` }, timeoutMs: 60_000 });
  await waitFor('the watch to be held', async () => JSON.parse(await d.ok('-s', 'status', '--json')).worker.watches === 1, 10_000, 100);
  const t0 = Date.now();
  const stop = await d.stop();
  t.equal(stop.code, 0);
  const r = await held;
  t.equal(r.status, 200, 'the watch got a full answer');
  t.equal(JSON.parse(r.body.toString()).this_node, 'ECIF');
  t.ok(Date.now() - t0 < 30_000, 'stop did not wait for the watch to time out');
  t.same(processesOfHome(d.home.root), []);
});

t.test('bad input never takes the daemon down nor changes stored config', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE), conf: (c) => { c.comm.max_body_size = 64 * 1024; } });
  const nodesBefore = await d.ok('-s', 'nodes', '--json');
  const json = { 'content-type': 'application/json' };
  let r = await d.http('POST', '/v1/nodes', { body: '{"node":', headers: json });
  t.equal(r.status, 400);
  t.match(JSON.parse(r.body.toString()), { code: 'IBP_ERR_CODEC_JSON' });
  r = await d.http('POST', '/v1/nodes', { body: Buffer.alloc(200 * 1024, 0x20), headers: json });
  t.equal(r.status, 413);
  r = await d.http('POST', '/v1/nodes', { body: Buffer.from([0, 0, 0, 9, 1, 2, 3]), headers: { ...json, 'content-encoding': 'lz4' } });
  t.equal(r.status, 400);
  t.match(JSON.parse(r.body.toString()), { code: 'IBP_ERR_CODEC_LZ4' });
  r = await d.http('GET', '/v1/nodes', { headers: { authorization: '' } });
  t.equal(r.status, 401);
  // raw garbage and a half request over TCP
  await new Promise<void>((resolve) => {
    const s = net.connect(d.port, d.ip, () => s.end('\x00\x01GARBAGE\r\n\r\n'));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
    s.resume();
  });
  await new Promise<void>((resolve) => {
    const s = net.connect(d.port, d.ip, () => {
      s.write('POST /v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"no');
      setTimeout(() => s.destroy(), 100);
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  t.equal(await d.ok('-s', 'nodes', '--json'), nodesBefore, 'the daemon answers and the data is unchanged');
  t.equal(ibmsPids(d.home).workers.length, 1);
  t.match(fs.readFileSync(d.home.log('ibms_worker.log'), 'utf8'), /auth refused , remote\[/, 'the 401 was logged');
});

t.test('USR1 reopens the logs', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE) });
  const log = d.home.log('ibms_worker.log');
  fs.renameSync(log, `${log}.1`);
  const monitor = Number(fs.readFileSync(d.home.run('ibms.pid'), 'utf8'));
  process.kill(monitor, 'SIGUSR1');
  await waitFor('a new worker log after USR1', async () => {
    await d.ok('-a', 'set_node_kv', '--node', 'CRM', '--key', 'k', '--value', String(Date.now()));
    return fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('set_node_kv CRM k');
  }, 15_000, 200);
  t.pass('the worker writes to a fresh file');
  t.ok(fs.existsSync(d.home.log('ibms_monitor.log')));
});

t.test('lz4 with the real daemon both ways; a watcher that goes away is forgotten; kill leaves no worker', async (t) => {
  const d = await makeDaemon(t, { data: structuredClone(SAMPLE), conf: (c) => { c.comm.min_compress_size = 256; } });
  const { lz4Compress, lz4Decompress } = await import('../../lib/codec/lz4.js');
  const body = lz4Compress(Buffer.from(JSON.stringify({ value: 'x'.repeat(3000) })))!;
  let r = await d.http('PUT', '/v1/nodes/CRM/kvs/big', { body, headers: { 'content-type': 'application/json', 'content-encoding': 'lz4' } });
  t.equal(r.status, 200, 'an lz4 request body is accepted');
  r = await d.http('GET', '/v1/nodes_kv?node=CRM', { headers: { 'accept-encoding': 'lz4' } });
  t.equal(r.headers['content-encoding'], 'lz4', 'an answer above min_compress_size is compressed');
  t.equal(JSON.parse(lz4Decompress(r.body, 1 << 20).toString()).kvs[0].value, 'x'.repeat(3000));
  r = await d.http('GET', '/v1/nodes_changed', { headers: { 'accept-encoding': 'lz4' } });
  t.notOk(r.headers['content-encoding'], 'a small answer is not');
  t.same(JSON.parse(r.body.toString()), { nodes: ['CRM'] });
  t.match(await d.ok('-s', 'nodes_kv', '--node', 'CRM'), /CRM.*big.*xxxx/, 'the CLI decodes compressed answers');

  const cred = (await d.ok('-s', 'node_credential', '--node', 'CRM')).trim();
  const first = await d.http('GET', '/v1/agent/config?node=CRM', { headers: { authorization: `Bearer ${cred}` } });
  const q = `index=${first.headers['x-ibp-index']}&epoch=${first.headers['x-ibp-epoch']}&wait=60`;
  const gone = d.http('GET', `/v1/agent/config?node=CRM&${q}`, { headers: { authorization: `Bearer ${cred}` }, timeoutMs: 1000 });
  await t.rejects(gone, /timed out/, 'the client gives up');
  await waitFor('the abandoned watch to be released', async () => JSON.parse(await d.ok('-s', 'status', '--json')).worker.watches === 0, 10_000, 100);
  t.pass('released');

  const k = await d.ibms('-a', 'kill');
  t.equal(k.code, 0);
  await waitFor('the orphaned worker to stop by itself', () => processesOfHome(d.home.root).length === 0, 20_000, 100);
  t.pass('no process left after kill');
});

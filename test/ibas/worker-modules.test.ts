// Issue 9 (worker RSS): a worker gets its ibas.conf validated by the manager (ibas/handover.ts)
// and reads only shm.index_key of ibma.conf (lib/config/ibma-index-key.ts), so it never loads the
// schema validator — ajv and TypeBox cost each worker 5–8 MB of RSS. A real pool is started with
// every process's ES module resolutions traced (helpers/module-trace.mjs through NODE_OPTIONS);
// after binary and HTTP transactions the worker's list must hold none of them, while the
// manager's list (which validates ibas.conf) shows the trace does see them. The HTTP adapter is
// loaded by the worker's first HTTP connection, not before.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

const TRACE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'module-trace.mjs');

/** What a worker must not load: the schema validator and the validating config loader. */
const FORBIDDEN: [string, RegExp][] = [
  ['ajv', /\/node_modules\/ajv\//],
  ['ajv-formats', /\/node_modules\/ajv-formats\//],
  ['@sinclair/typebox', /\/node_modules\/@sinclair\/typebox\//],
  ['lib/config/load.js (validation)', /\/dist\/lib\/config\/load\.js$/],
  ['lib/config/*-conf.js (schemas)', /\/dist\/lib\/config\/[a-z]+-conf\.js$/],
];

function traced(dir: string, pid: number): string[] {
  try {
    return fs.readFileSync(path.join(dir, `${pid}.txt`), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function httpEcho(ip: string, port: number, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, method: 'POST', path: '/ibp/ibp_test_echo', agent: false, timeout: 10_000 }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error('HTTP echo timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('a pool worker serves without loading ajv, TypeBox or the config schemas', async (t) => {
  const s = await setupIbas(t, { mode: 'STATIC_WORKERPOOL', maxCount: 1 });
  const dir = fs.mkdtempSync(path.join(s.home, 'trace-'));
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --import=${TRACE}`.trim();
  await s.start({ NODE_OPTIONS: nodeOptions, MODULE_TRACE_DIR: dir });
  const [worker] = await waitWorkers(s, 1);
  t.ok(worker, 'one worker');

  const r = await callOnce(s.ip, s.port, 'ibp_test_echo', 'binary echo');
  t.equal(r.rc, 0, 'a binary transaction');
  t.equal(r.body.toString(), 'binary echo');
  const HTTP_PARSER = /\/node_modules\/http-parser-js\//;
  t.notOk(traced(dir, worker!.pid).some((u) => HTTP_PARSER.test(u)), 'binary only so far: the HTTP adapter is not loaded');
  const h = await httpEcho(s.ip, s.port, 'http echo');
  t.equal(h.status, 200, 'an HTTP transaction');
  t.equal(h.body, 'http echo');
  t.ok(traced(dir, worker!.pid).some((u) => HTTP_PARSER.test(u)), 'the first HTTP connection loaded it');

  const workerMods = traced(dir, worker!.pid);
  t.ok(workerMods.some((u) => u.endsWith('/dist/ibas/worker.js')), `the worker's modules were traced (${workerMods.length} URLs)`);
  for (const [name, re] of FORBIDDEN) t.same(workerMods.filter((u) => re.test(u)), [], `the worker did not load ${name}`);

  // the trace sees these modules where they are loaded: the manager validates ibas.conf
  const managerMods = traced(dir, s.managerPid());
  t.ok(managerMods.some((u) => FORBIDDEN[0]![1].test(u)), 'the manager\'s trace shows ajv (the check can fail)');
  t.ok(managerMods.some((u) => FORBIDDEN[2]![1].test(u)), 'and TypeBox');

  const stop = await s.stop();
  t.equal(stop.code, 0, stop.stderr);
});

/**
 * App packages against a fake registry that can lie: a package whose bytes do not match the
 * bundle's sha256 (or whose X-Ibp-Sha256 header disagrees) is discarded and logged and the old
 * file stays; the update lands later, atomically, once the registry serves the right bytes; a
 * package offered to other nodes (403) is not asked for again until it changes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { FakeIbms, sha256 } from './fake-ibms.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const CRED = 'cred-GAMMA-0123456789abcdef';
const A = crypto.randomBytes(1024 * 1024);
const B = crypto.randomBytes(1536 * 1024);
const OTHER = crypto.randomBytes(4096);

function bundle(version: number, pkg: Buffer): NodeBundle {
  return {
    epoch: 'P1',
    version,
    this_node: 'GAMMA',
    nodes: [{ node: 'GAMMA', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18003 }], kvs: { v: String(version) } }],
    apps: [
      { app: 'APP1', desc: 'served here', bin: 'app1.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'GAMMA', sha256: sha256(pkg), size: pkg.length },
      { app: 'APP1B', desc: 'same package', bin: 'app1.so', timeout: 5, timeout2: 0, invalid: 0, server_node: '', sha256: sha256(pkg), size: pkg.length },
      { app: 'APP2', desc: 'served elsewhere', bin: 'app2.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'DELTA', sha256: sha256(OTHER), size: OTHER.length },
    ],
  };
}

const ip = loopbackIp();
const fake = new FakeIbms(ip, bundle(1, A));
let a: AgentHome;
let space: ConfigSpace;
let so1 = '';

t.before(async () => {
  const root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
  fake.packages.set('app1.so', { body: A });
  fake.packages.set('app2.so', { body: OTHER, forbidden: true });
  a = await makeAgentHome(t, { root, node: 'GAMMA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED });
  so1 = path.join(a.home, 'so', 'app1.so');
});

t.test('a package is installed with a verified hash before the config is published', async (t) => {
  const r = await a.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  space = await openSpace(top, a.indexKey);
  t.ok(fs.existsSync(so1), 'so/app1.so is there once the space exists');
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'with the registry\'s bytes');
  t.notOk(fs.existsSync(`${so1}.updating`), 'no .updating file left');
  t.equal(space.app('APP1')?.sha256, sha256(A), 'the space carries the package sha256');
  t.equal(fake.count('/v1/agent/packages/app1.so'), 1, 'one download for two apps sharing a bin');
  t.notOk(fs.existsSync(path.join(a.home, 'so', 'app2.so')), 'a package offered to other nodes is not installed');
  t.ok(a.logLines().some((l) => /^package installed , bin\[app1\.so\]/.test(l.msg)));
});

t.test('a corrupted package is rejected, logged, and the old file stays', async (t) => {
  const corrupted = Buffer.from(B);
  corrupted[12345] ^= 0xff;
  fake.packages.set('app1.so', { body: corrupted, header: sha256(B) });
  fake.setBundle(bundle(2, B));
  await waitFor('version 2 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '2', 10_000);
  const line = a.logLines().find((l) => /^package rejected , bin\[app1\.so\]/.test(l.msg));
  t.ok(line, 'the rejection is logged');
  t.equal(line?.level, 'error');
  t.match(line?.msg ?? '', new RegExp(`expected\\[${sha256(B)}\\]`), 'naming the expected sha256');
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'the old package is still in place, whole');
  t.notOk(fs.existsSync(`${so1}.updating`), 'the rejected bytes were never written');
  const st = JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] };
  t.same(st.packages_failed, ['app1.so'], 'status lists the failing package');
});

t.test('a package whose header disagrees with the bundle is rejected too', async (t) => {
  const before = a.logLines().filter((l) => /^package rejected/.test(l.msg)).length;
  fake.packages.set('app1.so', { body: B, header: sha256(A) });
  await waitFor('another rejection (retried on the next watch round)', () => a.logLines().filter((l) => /^package rejected/.test(l.msg)).length > before, 10_000);
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'the old package is still in place');
});

t.test('once the registry serves the right bytes the update lands atomically', async (t) => {
  // watch so/app1.so from this process while the agent replaces it: every read is A, B, or absent
  // (the short gap of IBP's order, when a server opens <bin>.updating), never a mix
  const seen = new Map<string, number>();
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      let h = 'absent';
      try {
        h = sha256(fs.readFileSync(so1));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        t.ok(fs.existsSync(`${so1}.updating`) || fs.existsSync(so1), 'in the gap the .updating file is complete and there');
      }
      seen.set(h, (seen.get(h) ?? 0) + 1);
      await new Promise((r) => setImmediate(r));
    }
  })();
  fake.packages.set('app1.so', { body: B });
  await waitFor('the new package in place', () => seen.has(sha256(B)), 15_000);
  stop = true;
  await reader;
  for (const h of seen.keys()) t.ok([sha256(A), sha256(B), 'absent'].includes(h), `every read of so/app1.so is a whole package (${h.slice(0, 12)})`);
  t.notOk(fs.existsSync(`${so1}.updating`), 'no .updating file left');
  t.ok(a.logLines().some((l) => /^package installed , bin\[app1\.so\] sha256\[/.test(l.msg) && l.msg.includes(sha256(B))));
  const st = JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] };
  t.equal(st.packages_failed, undefined, 'nothing failing any more');
});

t.test('a package offered to other nodes is asked for once per version', async (t) => {
  fake.setBundle(bundle(3, B));
  await waitFor('version 3 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '3', 10_000);
  t.equal(fake.count('/v1/agent/packages/app2.so'), 1, 'one 403, then never again for the same sha256');
  t.equal(fake.count('/v1/agent/packages/app1.so', () => true) >= 3, true);
});

t.test('stop keeps the space for clients', async (t) => {
  const r = await a.ibma(['-a', 'stop']);
  t.equal(r.code, 0, r.stderr);
  const nodes = await a.ibma(['-s', 'nodes', '--json']);
  t.equal(nodes.code, 0, nodes.stderr);
  t.same((JSON.parse(nodes.stdout) as { node: string; port: number }[]).map((n) => [n.node, n.port]), [['GAMMA', 18003]], 'ibma -s nodes reads the kept space');
  t.equal(space.checkSwitch(), false);
  t.equal(space.kv('GAMMA', 'v'), '3', 'a reader keeps working after the agent stopped');
});

/**
 * Property tests: any valid bundle published by the writer reads back through the reader exactly
 * (every node, host, app and kv; unknown names miss), and a reader that has not switched keeps the
 * data of its own generation while the writer flips through random bundles.
 */
import t from 'tap';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigSpaceWriter, type SpaceSettings } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { homeKeyBase } from '../../lib/shm/keys.js';
import { effectiveTimeout2, NAME_PATTERN, type AppWithPackage, type NodeBundle, type NodeConf } from '../../lib/config/model.js';
import { reapHome, segmentsOfHome } from '../helpers/procs.js';

const name = fc.stringMatching(new RegExp(NAME_PATTERN));
const text = fc.string({ unit: 'grapheme', maxLength: 24 });
const flag = fc.constantFrom<0 | 1>(0, 1);
const host = fc.record({ ip: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }), invalid: fc.option(flag, { nil: undefined }) }, { requiredKeys: ['ip', 'port'] });
const seconds = fc.double({ min: 0.001, max: 86400, noNaN: true });

const nodeConf = (n: string) => fc.record({
  invalid: flag,
  key_exp: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
  hosts: fc.array(host, { maxLength: 4 }),
  kvs: fc.dictionary(name, text, { maxKeys: 5 }),
}).map((r): NodeConf => {
  const out: NodeConf = { node: n, invalid: r.invalid, hosts: r.hosts.map((h) => (h.invalid === undefined ? { ip: h.ip, port: h.port } : h)), kvs: r.kvs };
  if (r.key_exp !== undefined) out.key_exp = r.key_exp;
  return out;
});

const appConf = (code: string, nodes: string[]) => fc.record({
  desc: text,
  bin: fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,20}\.so$/),
  timeout: seconds,
  timeout2: fc.oneof(fc.constant(0), seconds),
  invalid: flag,
  server_node: fc.option(nodes.length ? fc.constantFrom('', ...nodes) : fc.constant(''), { nil: undefined }),
  sha256: fc.oneof(fc.constant(''), fc.stringMatching(/^[0-9a-f]{64}$/)),
  size: fc.integer({ min: 0, max: 0xffffffff }),
  signed: fc.option(fc.record({ manifest: text, signature: fc.base64String({ maxLength: 88 }), sha256_next: fc.stringMatching(/^[0-9a-f]{64}$/) }), { nil: undefined }),
}).map((r): AppWithPackage => {
  const out: AppWithPackage = { app: code, desc: r.desc, bin: r.bin, timeout: r.timeout, timeout2: r.timeout2, invalid: r.invalid, sha256: r.sha256, size: r.size };
  if (r.server_node !== undefined) out.server_node = r.server_node;
  if (r.signed) Object.assign(out, r.signed);
  return out;
});

const bundleArb = fc
  .record({ nodes: fc.uniqueArray(name, { maxLength: 12 }), apps: fc.uniqueArray(name, { maxLength: 20 }), epoch: fc.string({ minLength: 1, maxLength: 16 }), version: fc.nat() })
  .chain(({ nodes, apps, epoch, version }) =>
    fc.record({
      nodes: fc.tuple(...nodes.map(nodeConf)),
      apps: fc.tuple(...apps.map((a) => appConf(a, nodes))),
      this_node: nodes.length ? fc.constantFrom(...nodes) : name,
      package_key: fc.option(fc.base64String({ maxLength: 64 }), { nil: undefined }),
    }).map(({ nodes: ns, apps: as, this_node, package_key }): NodeBundle => ({ epoch, version, this_node, nodes: ns, apps: as, ...(package_key === undefined ? {} : { package_key }) })));

const settingsArb: fc.Arbitrary<SpaceSettings> = fc.record({
  ibms: fc.record({ ip: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }) }),
  connecting_timeout: seconds,
  retry_connect_timeval: seconds,
  min_compress_size: fc.nat(),
});

/** Everything the reader shows, rebuilt from the bundle (what it should show). */
function expected(b: NodeBundle) {
  let host = 0;
  return {
    nodes: b.nodes.map((n) => {
      const first = host;
      host += n.hosts.length;
      return {
        view: { name: n.node, invalid: n.invalid, keyExp: n.key_exp ?? '', firstHost: first, hostCount: n.hosts.length },
        hosts: n.hosts.map((h, i) => ({ index: first + i, ip: h.ip, port: h.port, invalid: h.invalid ?? 0 })),
        kvs: Object.entries(n.kvs),
      };
    }),
    apps: b.apps.map((a) => ({ app: a.app, desc: a.desc, bin: a.bin, timeout: a.timeout, timeout2: effectiveTimeout2(a), serverNode: a.server_node ?? '', invalid: a.invalid, sha256: a.sha256, packageSize: a.size, manifest: a.manifest ?? '', signature: a.signature ?? '', sha256Next: a.sha256_next ?? '' })),
  };
}

function check(r: ConfigSpace, b: NodeBundle, s: SpaceSettings): void {
  const want = expected(b);
  const h = r.header();
  if (h.thisNode !== b.this_node || h.nodeCount !== b.nodes.length || h.appCount !== b.apps.length || h.epoch !== b.epoch || h.bundleVersion !== b.version || h.packageKey !== (b.package_key ?? '')) throw new Error(`header ${JSON.stringify(h)}`);
  if (h.ibms.ip !== s.ibms.ip || h.ibms.port !== s.ibms.port || h.connectingTimeout !== s.connecting_timeout || h.retryConnectTimeval !== s.retry_connect_timeval || h.minCompressSize !== s.min_compress_size) throw new Error(`settings ${JSON.stringify(h)}`);
  assert.deepEqual(r.nodes(), want.nodes.map((n) => n.view));
  assert.deepEqual(r.apps(), want.apps);
  for (const n of want.nodes) {
    assert.deepEqual(r.node(n.view.name), n.view);
    assert.deepEqual(r.hosts(n.view.name), n.hosts);
    assert.deepEqual(r.kvs(n.view.name), n.kvs);
    for (const [k, v] of n.kvs) if (r.kv(n.view.name, k) !== v) throw new Error(`kv ${n.view.name}.${k}`);
    if (r.kv(n.view.name, '#none') !== undefined) throw new Error('kv #none found');
  }
  for (const a of want.apps) assert.deepEqual(r.app(a.app), a);
  if (r.node('#none') !== undefined || r.app('#none') !== undefined) throw new Error('#none found');
}

t.test('any bundle reads back exactly', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const w = new ConfigSpaceWriter(homeKeyBase(home));
  const r = (() => {
    w.publish({ epoch: 'e', version: 0, this_node: 'X', nodes: [], apps: [] }, { ibms: { ip: '127.0.0.1', port: 1 }, connecting_timeout: 1, retry_connect_timeval: 1, min_compress_size: 0 });
    return ConfigSpace.openKey(w.indexKey);
  })();
  let runs = 0;
  fc.assert(
    fc.property(bundleArb, settingsArb, (b, s) => {
      w.publish(b, s);
      if (!r.checkSwitch()) throw new Error('reader did not switch');
      check(r, b, s);
      w.collectGarbage();
      runs++;
    }),
    { numRuns: 120 },
  );
  t.equal(runs, 120);
  t.equal(w.oldSegments().length, 0, 'every old segment collected');
  r.close();
  w.removeAll();
  t.same(await segmentsOfHome(home), []);
});

t.test('a reader that has not switched keeps reading its own generation', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const w = new ConfigSpaceWriter(homeKeyBase(home));
  const s: SpaceSettings = { ibms: { ip: '127.0.0.1', port: 1 }, connecting_timeout: 1, retry_connect_timeval: 1, min_compress_size: 0 };
  fc.assert(
    fc.property(fc.array(bundleArb, { minLength: 2, maxLength: 5 }), (bundles) => {
      w.publish(bundles[0]!, s);
      const stale = ConfigSpace.openKey(w.indexKey);
      const gen = stale.generation;
      for (const b of bundles.slice(1)) w.publish(b, s);
      if (w.collectGarbage().includes(stale.key)) throw new Error('collected a segment a reader holds');
      check(stale, bundles[0]!, s);
      if (stale.generation !== gen) throw new Error('generation moved without checkSwitch');
      if (!stale.checkSwitch()) throw new Error('no switch');
      check(stale, bundles.at(-1)!, s);
      stale.close();
      w.collectGarbage();
    }),
    { numRuns: 30 },
  );
  t.pass('30 stale readers read their own generation');
  t.equal(w.oldSegments().length, 0);
  w.removeAll();
});

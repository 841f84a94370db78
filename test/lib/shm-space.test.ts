/**
 * Config space round trips in one process: publish a bundle, read it back through the reader's
 * hash tables, flip to a new generation, keep reading the old one until checkSwitch, remove all.
 */
import t from 'tap';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ConfigSpaceWriter, type SpaceSettings } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { attachCount, destroySegment, shmidOf } from '../../lib/shm/sysv.js';
import { createShared, releaseShared } from '../../lib/shm/attachments.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { reapHome, segmentsOfHome } from '../helpers/procs.js';
import { isIbpError } from '../../lib/errors.js';

const CHILD = fileURLToPath(new URL('./shm-child.mjs', import.meta.url));
const settings: SpaceSettings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 2.5, retry_connect_timeval: 10, min_compress_size: 4096 };

function bundle(version: number, extra: Partial<NodeBundle> = {}): NodeBundle {
  return {
    epoch: 'e1',
    version,
    this_node: 'ECIF',
    nodes: [
      { node: 'ECIF', invalid: 0, key_exp: 'k1', hosts: [{ ip: '127.0.0.1', port: 18001 }, { ip: '127.0.0.2', port: 18002, invalid: 1 }], kvs: { db: 'ecifdb', 'log.level': 'INFO' } },
      { node: 'CORE', invalid: 1, hosts: [{ ip: '127.0.0.3', port: 18003 }], kvs: {} },
    ],
    apps: [
      { app: 'T0001', desc: 'query customer 客户', bin: 'ecif_query.so', timeout: 2, timeout2: 0, invalid: 0, server_node: 'ECIF', sha256: 'a'.repeat(64), size: 1234, manifest: '{"m":1}', signature: 'c2ln', sha256_next: 'b'.repeat(64) },
      { app: 'T0002', desc: '', bin: 'core_post.so', timeout: 5, timeout2: 9, invalid: 1, sha256: '', size: 0 },
    ],
    ...extra,
  };
}

t.test('publish, look up, flip, switch, remove all', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;

  t.throws(() => ConfigSpace.openKey(indexKey), { code: 'IBP_ERR_SHM_NO_SPACE' }, 'nothing published yet');
  const w = new ConfigSpaceWriter(indexKey);
  t.equal(w.current(), undefined);
  t.throws(() => ConfigSpace.openKey(indexKey), { code: 'IBP_ERR_SHM_NO_SPACE' }, 'index but no config segment');
  const p1 = w.publish(bundle(1), settings);
  t.same(p1, { key: indexKey + KEY_SLOT.CONFIG_FIRST, generation: 1 });

  const r = ConfigSpace.openKey(indexKey);
  t.equal(r.generation, 1);
  const h = r.header();
  t.equal(h.packageKey, '', 'no package key in this bundle');
  t.match(h, { thisNode: 'ECIF', generation: 1, ibms: { ip: '127.0.0.1', port: 18000 }, connectingTimeout: 2.5, retryConnectTimeval: 10, minCompressSize: 4096, nodeCount: 2, hostCount: 3, appCount: 2, kvCount: 2 });
  t.ok(Math.abs(h.buildTime - Date.now()) < 60_000);
  t.same(r.node('ECIF'), { name: 'ECIF', invalid: 0, keyExp: 'k1', firstHost: 0, hostCount: 2 });
  t.same(r.node('CORE'), { name: 'CORE', invalid: 1, keyExp: '', firstHost: 2, hostCount: 1 });
  t.equal(r.node('NOPE'), undefined);
  t.same(r.hosts('ECIF'), [{ index: 0, ip: '127.0.0.1', port: 18001, invalid: 0 }, { index: 1, ip: '127.0.0.2', port: 18002, invalid: 1 }]);
  t.same(r.hosts('NOPE'), []);
  t.same(r.app('T0001'), { app: 'T0001', desc: 'query customer 客户', bin: 'ecif_query.so', timeout: 2, timeout2: 3, serverNode: 'ECIF', invalid: 0, sha256: 'a'.repeat(64), packageSize: 1234, manifest: '{"m":1}', signature: 'c2ln', sha256Next: 'b'.repeat(64) });
  t.match(r.app('T0002'), { timeout2: 9, invalid: 1, serverNode: '', sha256: '', manifest: '', signature: '', sha256Next: '' });
  t.equal(r.app('T0003'), undefined);
  t.same(r.kvs('ECIF'), [['db', 'ecifdb'], ['log.level', 'INFO']]);
  t.equal(r.kv('ECIF', 'db'), 'ecifdb');
  t.equal(r.kv('CORE', 'db'), undefined);
  t.equal(r.nodes().length, 2);
  t.equal(r.apps().length, 2);

  // loads and retry times: one CAS each
  t.equal(r.getHostLoad(0), 0);
  t.ok(r.setHostLoad(0, 0, 7));
  t.notOk(r.setHostLoad(0, 0, 9), 'a CAS with a stale expected value fails');
  t.equal(r.getHostLoad(0), 7);
  const until = Date.now() + 10_000;
  t.ok(r.setRetryAt(1, 0, until));
  t.equal(r.getRetryAt(1), until);
  t.notOk(r.setRetryAt(1, 0, 1));
  t.throws(() => r.getHostLoad(3), { code: 'IBP_ERR_SHM_ARG' });

  // flip: the reader keeps its generation until checkSwitch
  const b2 = bundle(2);
  b2.nodes[0]!.kvs.db = 'ecifdb2';
  const p2 = w.publish(b2, settings);
  t.same(p2, { key: indexKey + KEY_SLOT.CONFIG_FIRST + 1, generation: 2 });
  t.equal(r.kv('ECIF', 'db'), 'ecifdb', 'not switched: old data');
  t.same(w.oldSegments(), [p1.key]);
  t.same(w.collectGarbage(), [], 'old segment still attached by the reader');
  t.match(r.indexInfo(), { key: p2.key, generation: 2, writerPid: process.pid }, 'the index is ahead of the reader');
  t.ok(Math.abs(r.indexInfo().publishedAt - Date.now()) < 60_000);
  t.equal(r.checkSwitch(), true);
  t.equal(r.checkSwitch(), false);
  t.equal(r.generation, 2);
  t.equal(r.kv('ECIF', 'db'), 'ecifdb2');
  t.equal(r.getHostLoad(0), 7, 'load carried into the new segment');
  t.equal(r.getRetryAt(1), until, 'retry time carried into the new segment');
  t.same(w.collectGarbage(), [p1.key], 'removed once the reader detached');
  t.equal(shmidOf(p1.key), -1);

  r.close();
  r.close();
  t.throws(() => r.node('ECIF'), { code: 'IBP_ERR_SHM_ARG' });
  w.removeAll();
  t.same(await segmentsOfHome(home), [], 'nothing of the home left after removeAll');
  t.equal(attachCount(indexKey), -1);
});

t.test('a new writer adopts the current segment of a previous writer process and collects the older ones', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  // the previous agent: another process that published twice and exited without cleaning
  const child = fork(CHILD, ['publish', String(indexKey)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  t.teardown(() => child.kill('SIGKILL'));
  child.send({ bundles: [bundle(1), bundle(2)], settings });
  const [msg] = (await once(child, 'message')) as [{ published: { key: number; generation: number }[] }];
  await once(child, 'exit');
  const p2 = msg.published[1]!;
  t.equal((await segmentsOfHome(home)).length, 3, 'index + 2 config segments outlive their writer');

  const w2 = new ConfigSpaceWriter(indexKey);
  t.same(w2.current(), p2);
  t.same(w2.oldSegments(), [indexKey + KEY_SLOT.CONFIG_FIRST]);
  t.same(w2.collectGarbage(), [indexKey + KEY_SLOT.CONFIG_FIRST]);
  const p3 = w2.publish(bundle(3), settings);
  t.equal(p3.generation, 3, 'generation continues');
  t.equal(p3.key, indexKey + KEY_SLOT.CONFIG_FIRST + 2);
  const r = ConfigSpace.openKey(indexKey);
  t.equal(r.header().bundleVersion, 3);
  r.close();
  w2.removeAll();
  t.same(await segmentsOfHome(home), []);
});

t.test('bad input is refused with a clear error and the current config stays', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const w = new ConfigSpaceWriter(indexKey);
  const p1 = w.publish(bundle(1), settings);
  const dup = bundle(2);
  dup.apps.push({ ...dup.apps[0]! });
  try {
    w.publish(dup, settings);
    t.fail('duplicate app accepted');
  } catch (e) {
    t.ok(isIbpError(e, 'IBP_ERR_SHM_INPUT'), 'IBP_ERR_SHM_INPUT');
    t.match((e as Error).message, /T0001 is listed twice/);
  }
  t.same(w.current(), p1);
  t.equal((await segmentsOfHome(home)).length, 2, 'no half-built segment left');
  w.removeAll();
});

t.test('open(ibma.conf) reads shm.index_key', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const conf = path.join(home, 'ibma.conf');
  const write = (key: number) => fs.writeFileSync(conf, `// the node agent\n${JSON.stringify({
    this_node: 'ECIF',
    ibms: { ip: '127.0.0.1', port: 18000 },
    credential: 'c'.repeat(32),
    comm: { min_compress_size: 4096 },
    ibac: { connecting_timeout: 2, retry_connect_timeval: 10 },
    shm: { index_key: key },
    log: {},
  }, null, 2)}\n`);
  write(indexKey);
  t.throws(() => ConfigSpace.open(conf), { code: 'IBP_ERR_SHM_NO_SPACE' }, 'no agent yet');
  t.throws(() => ConfigSpace.open(path.join(home, 'missing.conf')), { code: 'IBP_ERR_CFG_NOT_FOUND' });
  const w = new ConfigSpaceWriter(indexKey);
  w.publish(bundle(1), settings);
  const r = ConfigSpace.open(conf);
  t.equal(r.indexKey, indexKey);
  t.equal(r.header().thisNode, 'ECIF');
  r.close();
  write(0);
  t.throws(() => ConfigSpace.open(conf), { code: 'IBP_ERR_CFG_INVALID' }, 'index_key 0 refused by the schema');
  w.removeAll();
});

t.test('readers follow a re-created index and keep serving while it is gone', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const w1 = new ConfigSpaceWriter(indexKey);
  const p1 = w1.publish(bundle(1), settings);
  const r = ConfigSpace.openKey(indexKey);
  w1.removeAll(); // ibma -a stop_cleanly
  t.equal(shmidOf(indexKey), -1);
  t.equal(r.checkSwitch(), false, 'nothing to switch to');
  t.equal(r.kv('ECIF', 'db'), 'ecifdb', 'the removed segment stays mapped for the reader');

  // a new agent: same key and generation as before, but new segments
  const w2 = new ConfigSpaceWriter(indexKey);
  t.equal(r.checkSwitch(), false, 'a new index with nothing published yet');
  const b2 = bundle(1);
  b2.nodes[0]!.kvs.db = 'fresh';
  const p2 = w2.publish(b2, settings);
  t.same(p2, p1, 'same key and generation as the old publication');
  t.equal(r.checkSwitch(), true, 'switched anyway: the index was re-created');
  t.equal(r.kv('ECIF', 'db'), 'fresh');
  t.equal(r.checkSwitch(), false);
  r.close();
  w2.removeAll();
  t.same(await segmentsOfHome(home), []);
});

t.test('removeLeftovers (start_cleanly) removes IBP segments of the block only', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const w = new ConfigSpaceWriter(indexKey);
  w.publish(bundle(1), settings);
  w.publish(bundle(2), settings);
  w.close();
  const foreign = createShared(indexKey + 100, 64)!;
  foreign.buf.write('not ours');
  t.same(ConfigSpaceWriter.removeLeftovers(indexKey).sort(), [indexKey, indexKey + 16, indexKey + 17]);
  t.same((await segmentsOfHome(home)).map((s) => s.key), [indexKey + 100], 'a foreign segment in the block is left alone');
  releaseShared(foreign);
  destroySegment(indexKey + 100);
});

t.test('config keys go round-robin over +16 … +255, skipping taken keys', async (t) => {
  const home = t.testdir();
  t.teardown(() => reapHome(home));
  const indexKey = homeKeyBase(home);
  const foreign = createShared(indexKey + 20, 64)!; // someone else's segment inside the block
  const w = new ConfigSpaceWriter(indexKey);
  const r = ConfigSpace.openKey((w.publish(bundle(0), settings), indexKey));
  const keys: number[] = [];
  for (let v = 1; v <= 245; v++) {
    keys.push(w.publish(bundle(v), settings).key - indexKey);
    t.equal(r.checkSwitch(), true);
    w.collectGarbage();
  }
  t.same(keys.slice(0, 4), [17, 18, 19, 21], '+20 is taken: skipped');
  t.same(keys.slice(234, 245), [252, 253, 254, 255, 16, 17, 18, 19, 21, 22, 23], 'wraps from +255 to +16');
  t.equal(r.generation, 246);
  t.equal(r.header().bundleVersion, 245);
  t.same(w.oldSegments(), []);
  r.close();
  w.removeAll();
  releaseShared(foreign);
  destroySegment(indexKey + 20);
  t.same(await segmentsOfHome(home), []);
});

/**
 * Host choice on a real config space (SysV segments written by ConfigSpaceWriter, read by
 * ConfigSpace, in this process): least loaded by reported load, ties spread, invalid and suspended
 * hosts skipped, suspension expiring, pinning, exploration rate, one-CAS load writes that follow
 * the host when a new publication moves it to another slot.
 */
import t, { type Test } from 'tap';
import { ConfigSpaceWriter, type SpaceSettings } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import type { NodeBundle, NodeConf } from '../../lib/config/model.js';
import { reapHome } from '../helpers/procs.js';
import { privateDir } from '../helpers/cluster.js';
import { Balancer, LOAD_SCALE, loadValue, NoHostError } from '../../ibac/index.js';

const settings: SpaceSettings = { ibms: { ip: '127.0.0.1', port: 16001 }, connecting_timeout: 1, retry_connect_timeval: 5, min_compress_size: 1024 };

function bundle(version: number, nodes: NodeConf[]): NodeBundle {
  return {
    epoch: 'e1', version, this_node: 'CLI',
    nodes: [{ node: 'CLI', invalid: 0, hosts: [], kvs: {} }, ...nodes],
    apps: [{ app: 'T1', desc: '', bin: 't1.so', timeout: 1, timeout2: 0, invalid: 0, sha256: '', size: 0 }],
  };
}

const host = (ip: string, port: number, invalid?: 0 | 1) => ({ ip, port, ...(invalid ? { invalid } : {}) });

/** A seeded PRNG (mulberry32) so the spread checks are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function setup(t: Test, nodes: NodeConf[]) {
  const home = privateDir(t, 'balance');
  t.teardown(() => reapHome(home));
  const writer = new ConfigSpaceWriter(homeKeyBase(home) + KEY_SLOT.INDEX);
  writer.publish(bundle(1, nodes), settings);
  const space = ConfigSpace.openKey(homeKeyBase(home) + KEY_SLOT.INDEX);
  t.teardown(() => {
    space.close();
    writer.removeAll();
  });
  const slot = (node: string, key: string) => space.hosts(node).find((h) => `${h.ip}:${h.port}` === key)!.index;
  return { writer, space, slot };
}

t.test('loadValue: working / total in units of 1/10000, a dead pool counts as full', async (t) => {
  t.equal(loadValue({ working: 0, total: 4 }), 0);
  t.equal(loadValue({ working: 1, total: 3 }), 3333);
  t.equal(loadValue({ working: 3, total: 3 }), LOAD_SCALE);
  t.equal(loadValue({ working: 0, total: 0 }), LOAD_SCALE);
  t.equal(loadValue({ working: 9, total: 3 }), LOAD_SCALE, 'capped');
});

t.test('least loaded wins; ties are spread; invalid and excluded hosts are skipped', async (t) => {
  const { space, slot } = setup(t, [{ node: 'S', invalid: 0, hosts: [host('127.0.0.1', 1001), host('127.0.0.1', 1002), host('127.0.0.1', 1003), host('127.0.0.1', 1004, 1)], kvs: {} }]);
  const b = new Balancer(space, { retryConnectMs: 5000, explore: 0, random: seeded(1) });
  t.ok(space.setHostLoad(slot('S', '127.0.0.1:1001'), 0, 5000));
  t.ok(space.setHostLoad(slot('S', '127.0.0.1:1002'), 0, 2000));
  t.ok(space.setHostLoad(slot('S', '127.0.0.1:1003'), 0, 7000));
  for (let i = 0; i < 50; i++) t.equal(b.choose('S').key, '127.0.0.1:1002', 'least loaded') || t.end();
  t.equal(b.choose('S', { exclude: new Set(['127.0.0.1:1002']) }).key, '127.0.0.1:1001', 'next least loaded when excluded');
  space.setHostLoad(slot('S', '127.0.0.1:1001'), 5000, 2000);
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const k = b.choose('S').key;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  t.same([...counts.keys()].sort(), ['127.0.0.1:1001', '127.0.0.1:1002'], 'only the two tied hosts');
  t.ok(Math.abs(counts.get('127.0.0.1:1001')! - 1000) < 150, `ties spread: ${[...counts.values()].join(' / ')}`);
  t.notOk([...counts.keys()].includes('127.0.0.1:1004'), 'an invalid host is never chosen');
  const states = b.states('S');
  t.same(states.map((s) => [s.key, s.invalid, s.usable]), [['127.0.0.1:1001', false, true], ['127.0.0.1:1002', false, true], ['127.0.0.1:1003', false, true], ['127.0.0.1:1004', true, false]]);
});

t.test('a suspended host is skipped until its retry time, then tried again', async (t) => {
  const { space } = setup(t, [{ node: 'S', invalid: 0, hosts: [host('127.0.0.1', 2001), host('127.0.0.1', 2002)], kvs: {} }]);
  const b = new Balancer(space, { retryConnectMs: 5000, explore: 0, random: seeded(2) });
  const now = 1_700_000_000_000;
  const until = b.suspend('S', '127.0.0.1', 2001, now);
  t.equal(until, now + 5000, 'suspended for retry_connect_timeval');
  t.equal(b.states('S', now)[0]!.retryAt, now + 5000);
  for (let i = 0; i < 20; i++) t.equal(b.choose('S', { now: now + 4999 }).key, '127.0.0.1:2002') || t.end();
  const picks = new Set(Array.from({ length: 40 }, () => b.choose('S', { now: now + 5000 }).key));
  t.ok(picks.has('127.0.0.1:2001'), 'chosen again once the retry time has come');
  t.equal(b.suspend('S', '127.0.0.1', 2001, now - 1000), now + 5000, 'an earlier suspension does not shorten a later one');
  b.suspend('S', '127.0.0.1', 2002, now);
  t.throws(() => b.choose('S', { now: now + 1 }), { code: 'IBP_ERR_CLIENT_NO_HOST' }, 'every host suspended');
  t.equal(b.choose('S', { now: now + 1, pin: '127.0.0.1:2002' }).key, '127.0.0.1:2002', 'a pinned host is used even while suspended');
  t.throws(() => b.choose('S', { pin: '127.0.0.1:9999' }), NoHostError, 'a pin must be a host of the node');
});

t.test('unknown, invalid and hostless nodes', async (t) => {
  const { space } = setup(t, [{ node: 'OFF', invalid: 1, hosts: [host('127.0.0.1', 3001)], kvs: {} }, { node: 'EMPTY', invalid: 0, hosts: [], kvs: {} }]);
  const b = new Balancer(space, { retryConnectMs: 1000 });
  t.throws(() => b.choose('NOPE'), { code: 'IBP_ERR_CLIENT_NODE_UNKNOWN', message: /not in the config space of node CLI/ });
  t.throws(() => b.choose('OFF'), { code: 'IBP_ERR_CLIENT_NODE_INVALID' });
  t.throws(() => b.choose('EMPTY'), { code: 'IBP_ERR_CLIENT_NO_HOST', message: /it has no host/ });
});

t.test('exploration picks any usable host at the configured rate', async (t) => {
  const { space, slot } = setup(t, [{ node: 'S', invalid: 0, hosts: [host('127.0.0.1', 4001), host('127.0.0.1', 4002)], kvs: {} }]);
  space.setHostLoad(slot('S', '127.0.0.1:4002'), 0, LOAD_SCALE);
  const N = 4000;
  const rate = (explore: number) => {
    const b = new Balancer(space, { retryConnectMs: 1000, explore, random: seeded(3) });
    let busy = 0;
    for (let i = 0; i < N; i++) if (b.choose('S').key === '127.0.0.1:4002') busy++;
    return busy / N;
  };
  t.equal(rate(0), 0, 'without exploration the busy host is never chosen');
  const r = rate(0.25);
  t.ok(Math.abs(r - 0.125) < 0.03, `explore 0.25 over 2 hosts picks the busy one 1/8 of the time (${r})`);
  t.ok(rate(1 / 32) < 0.04, 'the default rate keeps it rare');
});

t.test('load reports are one CAS each and follow the host to its new slot', async (t) => {
  const { writer, space, slot } = setup(t, [{ node: 'S', invalid: 0, hosts: [host('127.0.0.1', 5001), host('127.0.0.1', 5002)], kvs: {} }]);
  const b = new Balancer(space, { retryConnectMs: 1000, explore: 0 });
  t.ok(b.report('S', '127.0.0.1', 5002, { working: 1, total: 4 }));
  t.equal(space.getHostLoad(slot('S', '127.0.0.1:5002')), 2500);
  t.ok(b.report('S', '127.0.0.1', 5001, { working: 1, total: 2 }));
  t.notOk(b.report('S', '127.0.0.1', 5999, { working: 1, total: 4 }), 'an unknown host is not written');
  t.notOk(b.report('GONE', '127.0.0.1', 5001, { working: 1, total: 4 }), 'nor a host of an unknown node');
  const before = slot('S', '127.0.0.1:5002');
  // a new host before the others moves them to other slots; their load carries over
  writer.publish(bundle(2, [{ node: 'A', invalid: 0, hosts: [host('127.0.0.9', 9)], kvs: {} }, { node: 'S', invalid: 0, hosts: [host('127.0.0.1', 5000), host('127.0.0.1', 5001), host('127.0.0.1', 5002)], kvs: {} }]), settings);
  t.ok(space.checkSwitch(), 'the reader switched');
  const after = slot('S', '127.0.0.1:5002');
  t.not(after, before, `host moved from slot ${before} to ${after}`);
  t.equal(space.getHostLoad(after), 2500, 'the writer carried its load over');
  t.ok(b.report('S', '127.0.0.1', 5002, { working: 3, total: 4 }));
  t.equal(space.getHostLoad(after), 7500, 'the report went to the new slot');
  t.equal(space.getHostLoad(slot('A', '127.0.0.9:9')), 0, 'the host now in the old slot was not touched');
  t.equal(b.choose('S').key, '127.0.0.1:5000', 'the new host (load 0) is chosen first');
  b.suspend('S', '127.0.0.1', 5000);
  t.equal(b.choose('S').key, '127.0.0.1:5001');
});

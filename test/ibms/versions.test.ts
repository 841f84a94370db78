import t from 'tap';
import { Versions } from '../../ibms/versions.js';
import { Sessions } from '../../ibms/sessions.js';

t.test('versions: distribute bumps changed nodes, never backwards, clears the list', async (t) => {
  const v = new Versions(['A', 'B', 'C'], 'E1');
  t.equal(v.version('A'), 1);
  t.equal(v.version('NEW'), 0, 'a node never distributed has version 0');
  v.markChanged(['A', 'B']);
  v.markChanged(['B']);
  t.same(v.changed(), ['A', 'B']);
  const d = v.distribute();
  t.same(d.map((x) => x.node), ['A', 'B']);
  t.ok(d[0]!.version > 1 && d[1]!.version > d[0]!.version, 'new versions come from one counter');
  t.same(v.changed(), [], 'the list is cleared');
  const c = v.download('C');
  t.ok(c > d[1]!.version, 'download_config gives a newer version still');
  t.equal(v.version('C'), c);
});

t.test('watch: answers at once on another epoch or any other version, waits on the current one', async (t) => {
  const v = new Versions(['A'], 'E1');
  t.equal(await v.wait('A', 1, 'OTHER', 5000), true, 'another epoch: at once');
  t.equal(await v.wait('A', 0, 'E1', 5000), true, 'older index: at once');
  t.equal(await v.wait('A', 99, 'E1', 5000), true, 'index ahead of the registry (restored from an older copy): at once');
  const t0 = Date.now();
  t.equal(await v.wait('A', 1, 'E1', 150), false, 'current: waits until the wait ends');
  t.ok(Date.now() - t0 >= 100, 'it did wait');

  const pending = v.wait('A', 1, 'E1', 10_000);
  t.equal(v.waiting('A'), 1);
  v.markChanged(['A']);
  t.equal(v.waiting('A'), 1, 'marking changed does not wake (only distribution does)');
  v.distribute();
  t.equal(await pending, true, 'distribution wakes the watch');
  t.equal(v.waiting(), 0);
});

t.test('watch: abort, drop and close end waits', async (t) => {
  const v = new Versions(['A', 'B'], 'E1');
  const ac = new AbortController();
  const p1 = v.wait('A', 1, 'E1', 10_000, ac.signal);
  ac.abort();
  t.equal(await p1, false, 'the client went away');
  const p2 = v.wait('B', 1, 'E1', 10_000);
  v.drop('B');
  t.equal(await p2, true, 'a removed node wakes its watchers');
  const p3 = v.wait('A', 1, 'E1', 10_000);
  v.close();
  t.equal(await p3, false, 'stopping answers held watches');
  t.equal(await v.wait('A', 1, 'E1', 10_000), true, 'after close every watch answers at once');
});

t.test('sessions: heartbeats, watches and expiry', async (t) => {
  let now = 1_000_000;
  const s = new Sessions(30, () => now);
  const end = s.watchStarted('ECIF', '127.0.0.5');
  t.equal(s.list().length, 1, 'a watch alone makes a session');
  t.equal(s.list()[0]!.pid, 0);
  s.heartbeat({ role: 'ibma', node: 'ECIF', pid: 4242 }, '127.0.0.5');
  const l = s.list();
  t.equal(l.length, 1, 'the first heartbeat replaces the anonymous watch session');
  t.equal(l[0]!.pid, 4242);
  t.equal(l[0]!.watches, 1, 'and carries its watch');
  s.heartbeat({ role: 'ibas', node: 'ECIF', ip: '127.0.0.5', port: 18001, pid: 5000, load: 3 }, '127.0.0.5');
  t.equal(s.list().length, 2);
  now += 31_000;
  const left = s.list();
  t.same(left.map((x) => x.role), ['ibma'], 'the ibas session expired; the agent blocked in a watch did not');
  end();
  now += 31_000;
  t.same(s.list(), [], 'once its watch ended and no heartbeat came, it expired too');
});

/**
 * Replay detection across the workers of one ibas (ibas/replay-cache.ts): a signed exchange
 * recorded on a connection that stays open (its worker stays held by it) and replayed on a fresh
 * connection is served by the OTHER worker of a pool of two, and still refused with TX_REPLAY,
 * nothing run. The shared segment exists while ibas runs and is removed at stop.
 */
import t from 'tap';
import { decodePacket, encodePacket } from '../../lib/protocol/codec.js';
import { FrameReader } from '../../lib/protocol/frame.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { segmentsOfHome, waitFor } from '../helpers/procs.js';
import { ReplayCache } from '../../ibas/replay-cache.js';
import { clientKey, limits, only, Peer, server } from './helpers/tx-peer.js';
import { setupIbas, waitWorkers } from './helpers/server.js';

t.test('a signed exchange replayed to another worker of the pool is refused', async (t) => {
  const s = await server(t, { sign_flag: 'required', encrypt_flag: 'optional' }, { maxCount: 2 });
  const replayKey = homeKeyBase(s.home) + KEY_SLOT.REPLAY_CACHE;
  t.ok((await segmentsOfHome(s.home)).some((x) => x.key === replayKey), 'the manager created the replay cache');
  const slotsOf = (journal: string): number[] => [0, 1, 2, 3].filter((i) => s.log(i).includes(`journal[${journal}]`));
  const refusedIn = (): number[] => [0, 1, 2, 3].filter((i) => /protocol error .*its nonce was seen before/.test(s.log(i)));

  // the original, on a connection held open: its worker serves nothing else meanwhile
  const held = await Peer.open(t, s);
  const rec = Buffer.concat(held.frames({ own: clientKey, request: Buffer.from('pay 100 to account 42'), journal: 'J-pay' }));
  held.raw.write(rec);
  t.equal(only((await held.upTo(2))[1], 'RESPONSE').rc, RC.OK, 'the original is served');
  const [first] = await waitFor('the original logged', () => { const x = slotsOf('J-pay'); return x.length === 1 ? x : undefined; }, 10_000);

  // the same bytes on a fresh connection: the other worker takes it
  const replay = await Peer.open(t, s);
  replay.raw.write(rec);
  await replay.raw.waitClosed(10_000);
  const rp = new FrameReader(limits.maxFrame).push(replay.raw.bytes()).map((f) => decodePacket(f, limits));
  t.match(rp[0], { type: 'ERROR', rc: RC.TX_REPLAY }, 'the replayed exchange: TX_REPLAY');
  t.equal(rp.length, 1, 'nothing else answered');
  const [by] = await waitFor('the refusal logged', () => { const x = refusedIn(); return x.length === 1 ? x : undefined; }, 10_000);
  t.not(by, first, `refused by worker ${by}, not by worker ${first} that served the original`);
  t.same(slotsOf('J-pay'), [first], 'the transaction ran once');
  held.raw.close();

  const r = await s.stop();
  t.equal(r.code, 0, 'stopped');
  await waitFor('the replay cache removed', async () => !(await segmentsOfHome(s.home)).some((x) => x.key === replayKey) || undefined, 15_000).catch(() => undefined);
  t.notOk((await segmentsOfHome(s.home)).some((x) => x.key === replayKey), 'the replay cache is removed at stop');
});

t.test('a server that signs nothing keeps no replay cache, not even a stale one', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, nodes: ['txc_client'], patch: (c) => { Object.assign(c.security, { sign_flag: 'none', encrypt_flag: 'none' }); } });
  const replayKey = homeKeyBase(s.home) + KEY_SLOT.REPLAY_CACHE;
  ReplayCache.create(replayKey, 1024).detach(); // left by a crashed run of the same home
  t.ok((await segmentsOfHome(s.home)).some((x) => x.key === replayKey), 'a stale replay cache is there before the start');
  await s.start();
  t.teardown(() => s.stop());
  await waitWorkers(s, 1);
  t.notOk((await segmentsOfHome(s.home)).some((x) => x.key === replayKey), 'the manager removed it and made none');
  // a signed pre-request is still answered (nothing granted), and the request then goes plain
  const p = await Peer.open(t, s);
  const [sealedPre] = p.frames({ own: clientKey, request: Buffer.alloc(0), journal: 'J-none' });
  p.seal = undefined; // the server grants nothing: its answers are not sealed
  p.raw.write(sealedPre!);
  t.match(only((await p.upTo(1))[0], 'PRE_ANSWER'), { rc: RC.OK, granted: 0 }, 'SIGN not granted');
  p.raw.write(encodePacket({ type: 'REQUEST', body: Buffer.from('plain after all') }));
  const rsp = only((await p.upTo(2))[1], 'RESPONSE');
  t.equal(rsp.rc, RC.OK, 'served unsigned');
  t.equal(rsp.body.toString(), 'plain after all', 'the echo');
  p.raw.close();
  t.equal((await s.stop()).code, 0, 'stopped');
});

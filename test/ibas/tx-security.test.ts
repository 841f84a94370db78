/**
 * Signed and encrypted transactions against a real ibas (issue 11): a server with
 * security.sign_flag required, node keys published in its config space by the real writer (as ibma
 * does) and its private key file in keys/ (helpers/tx-peer.ts).
 *
 * Raw peers (pipelined: pre-request, files and request in one write) check what the wire holds: a
 * signed and an encrypted exchange are served (the encrypted one's bytes never show the body);
 * unsigned, unknown-node, foreign-key and expired-key pre-requests are refused in the PRE_ANSWER
 * (SAFE: nothing ran, the connection stays in step) and logged; a flipped bit, a replayed
 * pre-request, a replayed and a reordered packet each get their own ERROR. The HTTP adapter refuses
 * unless the app is in security.http_unsigned_allow. Last, a key rotation under a signing ibac loop.
 * Two-phase decisions (TX_CONTROL) are sealed too: a signing ibac's multi-transaction commits; a
 * clear or foreign-key decision for a transaction in doubt is refused (it stays in doubt); the
 * recovery path (a fresh connection) and the operator's commit_tx commit it signed.
 * The negotiation matrix through ibac is test/ibas/tx-negotiation.test.ts.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { driveParticipant, newGtrid, TX_FLAG } from '../../ibac/index.js';
import { generateNodeKey, nodeKeyToWire } from '../../lib/node-keys.js';
import { decodePacket, encodePacket } from '../../lib/protocol/codec.js';
import { FrameReader } from '../../lib/protocol/frame.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { waitFor } from '../helpers/procs.js';
import { workerLogs } from './helpers/raw-peer.js';
import { NODE } from './helpers/server.js';
import { clientKey, expiredKey, limits, only, otherKey, Peer, published, server, serverKey, writePrivate } from './helpers/tx-peer.js';
import { createEnvironment } from '../../ibac/index.js';
import { ParticipantLog } from '../../ibas/participant-log.js';

t.test('sign_flag required: raw peers', async (t) => {
  const s = await server(t, { sign_flag: 'required', encrypt_flag: 'optional', http_unsigned_allow: ['ibp_test_rc'] });

  await t.test('a signed and an encrypted exchange on one connection are served', async (t) => {
    const p = await Peer.open(t, s);
    const body = Buffer.from('pay 100 to account 42 '.repeat(10));
    p.raw.write(Buffer.concat(p.frames({ own: clientKey, request: body, files: [Buffer.from('attached')] })));
    const [pa, rsp] = await p.upTo(2);
    t.match(only(pa, 'PRE_ANSWER'), { rc: RC.OK }, 'accepted');
    t.equal(only(pa, 'PRE_ANSWER').granted & TX_FLAG.SIGN, TX_FLAG.SIGN, 'SIGN granted');
    t.match(only(rsp, 'RESPONSE'), { rc: RC.OK });
    t.ok(only(rsp, 'RESPONSE').body.equals(body), 'echoed');
    t.ok(p.raw.bytes().includes(body), 'signed only: the body travels in clear');
    const secret = Buffer.from('the PIN is 4711 '.repeat(10));
    const before = p.raw.bytes().length;
    p.raw.write(Buffer.concat(p.frames({ own: clientKey, request: secret, encrypt: true })));
    const [, , pa2, rsp2] = await p.upTo(4);
    t.equal(only(pa2, 'PRE_ANSWER').granted & (TX_FLAG.SIGN | TX_FLAG.ENCRYPT), TX_FLAG.SIGN | TX_FLAG.ENCRYPT, 'SIGN and ENCRYPT granted');
    t.ok(only(rsp2, 'RESPONSE').body.equals(secret), 'the encrypted exchange echoes');
    t.notOk(p.raw.bytes().subarray(before).includes(Buffer.from('the PIN is')), 'encrypted: the body is not on the wire in clear');
    p.raw.close();
  });

  await t.test('unsigned, unknown node, foreign key, expired key: refused in the PRE_ANSWER (SAFE), logged, the connection goes on', async (t) => {
    const cases: [string, Parameters<Peer['frames']>[0], number][] = [
      ['unsigned', { request: Buffer.from('x'), journal: 'J-unsigned' }, RC.TX_UNPROTECTED],
      ['unknown node', { own: clientKey, node: 'stranger', request: Buffer.from('x'), journal: 'J-stranger' }, RC.TX_UNKNOWN_NODE],
      ['key of another node', { own: otherKey, node: 'txc_client', request: Buffer.from('x'), journal: 'J-foreign' }, RC.TX_FOREIGN_KEY],
      ['expired key', { own: expiredKey, request: Buffer.from('x'), journal: 'J-expired' }, RC.TX_KEY_EXPIRED],
    ];
    for (const [what, o, rc] of cases) {
      const p = await Peer.open(t, s);
      p.raw.write(Buffer.concat(p.frames({ ...o, files: [Buffer.from('f')] })));
      const [pa, rsp] = await p.upTo(2);
      t.equal(only(pa, 'PRE_ANSWER').rc, rc, `${what}: PRE_ANSWER rc ${rc}`);
      t.equal(only(rsp, 'RESPONSE').rc, rc, `${what}: the RESPONSE repeats it (the pipelined packets were read and dropped)`);
      p.raw.write(encodePacket({ type: 'KEEPALIVE' }));
      t.equal((await p.upTo(3))[2]?.type, 'KEEPALIVE_ACK', `${what}: the connection stays in step`);
      p.raw.close();
      await waitFor(`the refusal of ${o.journal} logged`, () => workerLogs(s, 1).includes(`journal[${o.journal}]`) && workerLogs(s, 1).includes('transaction refused'), 10_000);
    }
  });

  await t.test('a flipped bit, a replayed pre-request, a replayed and a reordered packet: each its own ERROR', async (t) => {
    const request = Buffer.from('transfer');
    // flipped bit in the sealed REQUEST
    let p = await Peer.open(t, s);
    const fr = p.frames({ own: clientKey, request });
    const last = fr[fr.length - 1]!;
    last[last.length - 20]! ^= 0x01;
    p.raw.write(Buffer.concat(fr));
    let got = await p.upTo(2);
    t.match(got[1], { type: 'ERROR', rc: RC.TX_TAMPERED }, 'a flipped bit: TX_TAMPERED');
    await p.raw.waitClosed(10_000);
    // a flipped bit in the signed pre-request
    p.raw.close();
    p = await Peer.open(t, s);
    const fp = p.frames({ own: clientKey, request, journal: 'JJ' });
    fp[0]![fp[0]!.length - 139]! ^= 0x01; // the journal "JJ" becomes "KJ": inside the signed body, before the hello
    p.raw.write(Buffer.concat(fp));
    t.match((await p.upTo(1))[0], { type: 'ERROR', rc: RC.TX_TAMPERED }, 'a flipped bit in the pre-request: TX_TAMPERED');
    // a whole exchange recorded and replayed on a new connection
    p = await Peer.open(t, s);
    const rec = Buffer.concat(p.frames({ own: clientKey, request }));
    p.raw.write(rec);
    t.equal(only((await p.upTo(2))[1], 'RESPONSE').rc, RC.OK, 'the original is served');
    p.raw.close();
    const replay = await Peer.open(t, s);
    replay.seal = p.seal;
    replay.raw.write(rec);
    await replay.raw.waitClosed(10_000);
    const rp = new FrameReader(limits.maxFrame).push(replay.raw.bytes()).map((f) => decodePacket(f, limits));
    t.match(rp[0], { type: 'ERROR', rc: RC.TX_REPLAY }, 'the replayed exchange: TX_REPLAY, nothing ran');
    // a packet replayed inside its exchange
    p = await Peer.open(t, s);
    const two = p.frames({ own: clientKey, request, files: [Buffer.from('one'), Buffer.from('two')] });
    p.raw.write(Buffer.concat([two[0]!, two[1]!, two[1]!]));
    got = await p.upTo(2);
    t.match(got[1], { type: 'ERROR', rc: RC.TX_REPLAY }, 'PUSH_FILE sent twice: TX_REPLAY');
    p.raw.close();
    // reordered
    p = await Peer.open(t, s);
    const ro = p.frames({ own: clientKey, request, files: [Buffer.from('one'), Buffer.from('two')] });
    p.raw.write(Buffer.concat([ro[0]!, ro[2]!, ro[1]!, ro[3]!]));
    got = await p.upTo(2);
    t.match(got[1], { type: 'ERROR', rc: RC.TX_OUT_OF_ORDER }, 'the second file before the first: TX_OUT_OF_ORDER');
    p.raw.close();
  });

  await t.test('the HTTP adapter refuses unless the app is allowed unsigned', async (t) => {
    const refused = await fetch(`http://${s.ip}:${s.port}/ibp/ibp_test_echo`, { method: 'POST', body: 'x' });
    t.equal(refused.status, 403);
    t.equal(refused.headers.get('x-ibp-result'), 'TX_UNPROTECTED');
    t.match(await refused.text(), /requires signed transactions/);
    const allowed = await fetch(`http://${s.ip}:${s.port}/ibp/ibp_test_rc`, { method: 'POST', body: '0:fine' });
    t.equal(allowed.status, 200, 'security.http_unsigned_allow lists ibp_test_rc');
    await allowed.arrayBuffer();
  });
});

t.test('a key rotation under a client loop with signing required: 0 failed calls, the old key refused after its disable time', async (t) => {
  const s = await server(t, { sign_flag: 'required', encrypt_flag: 'optional' });
  const env = createEnvironment({ config: s.ibmaConf });
  t.teardown(() => env.destroy());
  const t0 = Date.now();
  const enableAt = t0 + 1500;
  const disableAt = t0 + 4000;
  let ok = 0;
  let after = 0;
  const failures: string[] = [];
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop && i < 100_000; i++) {
      try {
        const r = await env.requester(NODE, 'ibp_test_echo', `r${i}`, undefined, { sign: true, encrypt: i % 2 === 0 });
        if (r.body.toString() !== `r${i}`) failures.push(`r${i}: wrong body`);
        else ok++;
        if (Date.now() > disableAt) after++;
      } catch (e) {
        failures.push(`r${i}: ${(e as Error).message}`);
      }
    }
  })();
  await waitFor('some signed calls before the rotation', () => ok >= 3 || undefined, 20_000, 10);
  // the rotation as ibma carries it out: the new private file first, then the space with both pairs
  const newKey = generateNodeKey(NODE, enableAt);
  writePrivate(s, newKey);
  s.republish((b) => {
    b.node_keys = [{ ...nodeKeyToWire(serverKey), disable_at: disableAt }, nodeKeyToWire(newKey), ...published.slice(1).map(nodeKeyToWire)];
  });
  await waitFor('calls after the old key\'s disable time', () => (after >= 3 ? true : undefined), 30_000, 20);
  stop = true;
  await loop;
  t.same(failures, [], `0 failed calls (${ok} signed calls across the rotation)`);
  t.ok(Date.now() > disableAt);
  // the old key, after its disable time: refused with its own error
  const p = await Peer.open(t, s);
  p.raw.write(Buffer.concat(p.frames({ own: serverKey, node: NODE, request: Buffer.from('late'), serverKey: newKey })));
  const [pa] = await p.upTo(1);
  t.equal(only(pa, 'PRE_ANSWER').rc, RC.TX_KEY_EXPIRED, 'a pre-request signed with the old key: TX_KEY_EXPIRED');
  p.raw.close();
  const q = await Peer.open(t, s);
  q.raw.write(Buffer.concat(q.frames({ own: newKey, node: NODE, request: Buffer.from('to the old server key') })));
  t.match((await q.upTo(1))[0], { type: 'ERROR', rc: RC.TX_NO_KEY }, 'a pre-request to the old server key: TX_NO_KEY');
  q.raw.close();
});

t.test('two-phase decisions sealed like pre-requests (sign_flag required)', async (t) => {
  const s = await server(t, { sign_flag: 'required', encrypt_flag: 'optional' }, { maxCount: 3, apps: [{ app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so' }] });
  const env = createEnvironment({ config: s.ibmaConf });
  t.teardown(() => env.destroy());
  // the states of the gtrid's branches here (one leg each in these tests)
  const state = (g: string): string => new ParticipantLog(s.home).branches(g).map((r) => r.state).join('+');
  const committed = (j: string): boolean => fs.existsSync(path.join(s.home, 'file', `ibp_test_2pc.${j}.committed`));

  await t.test('a multi-transaction of a signing ibac prepares and commits end to end', async (t) => {
    const multi = await env.multiConnect([{ node: NODE, app: 'ibp_test_2pc', request: 'debit' }]);
    t.teardown(() => multi.multiDisconnect());
    const prepared = await multi.multiSendRequestsAndReceiveResponses({ prepare: true, sign: true });
    t.ok(prepared.every((p) => p.ok), `voted yes: ${prepared.map((p) => p.error?.message ?? 'ok').join('; ')}`);
    const decided = await multi.multiSendCommitOrRollbackAndReceiveResponses(true);
    t.ok(decided.every((d) => d.ok), `committed: ${decided.map((d) => d.error?.message ?? 'ok').join('; ')}`);
    t.ok(prepared.every((p) => committed(p.journal!)), "the app's socommit ran");
    t.equal(state(multi.gtrid), 'COMMITTED');
  });

  await t.test('left in doubt: a clear and a foreign-key TX_CONTROL are refused, recovery and the operator commit signed', async (t) => {
    // two legs prepared by the signing ibac, their connections closed: in doubt
    const legs: { gtrid: string; journal: string; host: string }[] = [];
    for (const k of [1, 2]) {
      const conn = await env.connect(NODE, 'ibp_test_2pc');
      const gtrid = newGtrid(env.thisNode);
      const r = await conn.sendRequestAndReceiveResponse('ibp_test_2pc', `leg ${k}`, undefined, { prepare: true, gtrid, journal: `JS${k}`, sign: true });
      t.equal(r.appRc, 0, `leg ${k} prepared, signed`);
      legs.push({ gtrid, journal: `JS${k}`, host: conn.host });
      conn.disconnect();
    }
    const [a, b] = legs as [typeof legs[0], typeof legs[0]];
    await waitFor('both legs in doubt', () => (legs.every((l) => workerLogs(s, 3).includes(`two-phase in doubt: connection closed before the decision , gtrid[${l.gtrid}]`)) ? true : undefined), 10_000, 20);

    const clear = await Peer.open(t, s);
    clear.raw.write(clear.control({ op: 'COMMIT', gtrid: a.gtrid, journal: a.journal }));
    t.equal(only((await clear.upTo(1))[0], 'TX_CONTROL_ANSWER').rc, RC.TX_UNPROTECTED, 'a clear TX_CONTROL: TX_UNPROTECTED (answered)');
    clear.raw.write(encodePacket({ type: 'KEEPALIVE' }));
    t.equal((await clear.upTo(2))[1]?.type, 'KEEPALIVE_ACK', 'the connection stays in step');
    clear.raw.close();
    await waitFor('the refusal logged', () => (workerLogs(s, 3).includes(`two-phase commit refused , `) && workerLogs(s, 3).includes(`gtrid[${a.gtrid}]`) ? true : undefined), 10_000, 20);

    const foreign = await Peer.open(t, s);
    foreign.raw.write(foreign.control({ op: 'ROLLBACK', gtrid: a.gtrid, journal: a.journal, own: otherKey }));
    const [fp] = await foreign.upTo(1);
    const fa = only(fp?.type === 'ERROR' ? (t.fail(fp.message), fp) : fp, 'TX_CONTROL_ANSWER');
    t.equal(fa.rc, RC.TX_FOREIGN_KEY, 'sealed by another node\'s key: TX_FOREIGN_KEY (answered, sealed)');
    foreign.raw.close();

    // a node that prepared a transaction of its own on this connection may decide only that one's gtrid
    const own = await Peer.open(t, s);
    own.raw.write(Buffer.concat(own.frames({ own: clientKey, app: 'ibp_test_2pc', prepare: true, gtrid: 'txc_client.own.1', journal: 'JY', request: Buffer.from('mine') })));
    t.equal(only((await own.upTo(2))[1], 'RESPONSE').rc, RC.OK, 'txc_client prepared its own transaction (signed)');
    own.raw.write(own.control({ op: 'ROLLBACK', gtrid: a.gtrid, journal: 'JY', own: clientKey }));
    t.equal(only((await own.upTo(3))[2], 'TX_CONTROL_ANSWER').rc, RC.TX_FOREIGN_KEY, "naming its own journal with another coordinator's gtrid: TX_FOREIGN_KEY");
    own.raw.write(own.control({ op: 'ROLLBACK', gtrid: 'txc_client.own.1', journal: 'JY', own: clientKey }));
    t.equal(only((await own.upTo(4))[3], 'TX_CONTROL_ANSWER').rc, RC.OK, 'its own gtrid: rolled back');
    own.raw.close();
    t.equal(state(a.gtrid), 'PREPARED', 'still in doubt');
    t.notOk(fs.existsSync(path.join(s.home, 'file', `ibp_test_2pc.${a.journal}.rolledback`)), 'nothing rolled back');

    // the coordinator's recovery path: a fresh connection, the decision sealed
    const recovering = createEnvironment({ config: s.ibmaConf, sign: 'required' }); // a new process: signs as its environment says
    t.teardown(() => recovering.destroy());
    const driven = await driveParticipant(recovering, a.gtrid, 'COMMIT', 0, { node: NODE, app: 'ibp_test_2pc', host: a.host, journal: a.journal }, undefined, [0]);
    t.equal(driven.outcome, 'OK', `recovery committed: ${driven.error?.message ?? ''}`);
    t.equal(driven.answer?.body.toString(), `committed:${a.journal}`, "the app's answer came back sealed");
    t.equal(state(a.gtrid), 'COMMITTED');

    // the operator: sealed with the server node's own key from the home's keys/
    const op = await s.ibas(['-f', s.conf, '-a', 'commit_tx', '--gtrid', b.gtrid]);
    t.equal(op.code, 0, op.stderr);
    t.ok(committed(b.journal), 'the operator\'s commit ran');
    t.equal(state(b.gtrid), 'COMMITTED');
  });
});

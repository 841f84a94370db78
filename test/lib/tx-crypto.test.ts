/**
 * The crypto layer of signed and encrypted transactions (lib/protocol/tx-crypto.ts) and the
 * server's judge of pre-requests (lib/protocol/tx-security.ts), with keys generated here in a
 * StaticKeyring: a sealed exchange round-trips both ways; a flipped bit, a replayed or reordered
 * packet, a foreign or expired key, a replayed pre-request each get their own typed error.
 */
import t from 'tap';
import { generateNodeKey, StaticKeyring, type NodePrivateKey } from '../../lib/node-keys.js';
import { decodePacket, encodePacket, TX_FLAG, type PreRequest } from '../../lib/protocol/codec.js';
import { FRAME_FLAG, FRAME_TYPE, FrameReader, DEFAULT_LIMITS, type Frame } from '../../lib/protocol/frame.js';
import { Ephemeral, sealPreRequest, splitHello, TxSeal } from '../../lib/protocol/tx-crypto.js';
import { policyOf, TxGate, httpRefusal, type TxPolicy } from '../../lib/protocol/tx-security.js';

const server = generateNodeKey('SRV', 0);
const client = generateNodeKey('CLI', 0);
const other = generateNodeKey('OTHER', 0);
const other_ = other;
const expired = generateNodeKey('CLI', 0, Date.now() - 1000);
const serverRing = new StaticKeyring('SRV', [server], [server, client, other, expired]);

function frameOf(b: Buffer): Frame {
  const [f] = new FrameReader(DEFAULT_LIMITS.maxFrame).push(b);
  return f!;
}

function pre(node = 'CLI', flags: number = TX_FLAG.SIGN): { pre: PreRequest; frame: Buffer } {
  const p: PreRequest = { type: 'PRE_REQUEST', flags, fileCount: 1, timeoutMs: 1000, clientNode: node, app: 'echo', journal: 'J1' };
  return { pre: p, frame: encodePacket(p) };
}

/** The server's view of a sealed pre-request frame: the decoded pre-request and its hello. */
function received(sealed: Buffer) {
  const f = frameOf(sealed);
  const { inner, hello } = splitHello(f.body);
  return { pre: decodePacket({ type: f.type, flags: f.flags & ~FRAME_FLAG.SEALED, body: inner }, DEFAULT_LIMITS) as PreRequest, hello };
}

function gate(p: Partial<TxPolicy> = {}): TxGate {
  return new TxGate({ ...policyOf({ sign_flag: 'required', encrypt_flag: 'optional' }), ...p }, () => serverRing);
}

function handshake(g: TxGate, own: NodePrivateKey = client, node = 'CLI', flags: number = TX_FLAG.SIGN | TX_FLAG.ENCRYPT) {
  const eph = new Ephemeral();
  const { frame, keys } = sealPreRequest(pre(node, flags).frame, own, server, eph);
  const r = received(frame);
  const res = g.judge(r.pre, r.hello, {});
  return { frame, keys, res, clientSeal: new TxSeal('client', keys, own.kcv, server.kcv, (flags & TX_FLAG.ENCRYPT) !== 0) };
}

t.test('a sealed exchange round-trips, signed only and encrypted', async (t) => {
  for (const encrypt of [false, true]) {
    const h = handshake(gate(), client, 'CLI', TX_FLAG.SIGN | (encrypt ? TX_FLAG.ENCRYPT : 0));
    t.notOk(h.res.refusal, 'accepted');
    t.equal(h.res.granted & TX_FLAG.SIGN, TX_FLAG.SIGN);
    t.equal((h.res.granted & TX_FLAG.ENCRYPT) !== 0, encrypt, `ENCRYPT granted: ${encrypt}`);
    const srv = h.res.seal!;
    const body = Buffer.from('secret request '.repeat(20));
    const wire = h.clientSeal.seal(encodePacket({ type: 'REQUEST', body }));
    t.equal(wire.includes(body), !encrypt, encrypt ? 'the body is not on the wire in clear' : 'signed only: the body travels in clear');
    t.equal((wire[4]! & FRAME_FLAG.ENCRYPTED) !== 0, encrypt);
    const opened = decodePacket(srv.open(frameOf(wire)), DEFAULT_LIMITS);
    t.same(opened, { type: 'REQUEST', body });
    srv.encrypt = encrypt;
    const ans = srv.seal(encodePacket({ type: 'KEEPALIVE_ACK', load: { working: 1, total: 2 } }));
    // the client's first received packet is the server's sequence 0
    t.same(decodePacket(h.clientSeal.open(frameOf(ans)), DEFAULT_LIMITS), { type: 'KEEPALIVE_ACK', load: { working: 1, total: 2 } });
  }
});

t.test('a flipped bit, a replay, a reordering, an unsealed or stripped packet: each its own error', async (t) => {
  const h = handshake(gate());
  const srv = h.res.seal!;
  const p1 = h.clientSeal.seal(encodePacket({ type: 'PUSH_FILE', index: 0, name: 'a.txt', data: Buffer.from('abc') }));
  const p2 = h.clientSeal.seal(encodePacket({ type: 'REQUEST', body: Buffer.from('x') }));
  const flipped = Buffer.from(p1);
  flipped[flipped.length - 20]! ^= 0x01;
  t.throws(() => srv.open(frameOf(flipped)), { code: 'IBP_ERR_TX_TAMPERED' }, 'a flipped bit');
  t.throws(() => srv.open(frameOf(p2)), { code: 'IBP_ERR_TX_OUT_OF_ORDER' }, 'sequence 2 before 1');
  srv.open(frameOf(p1));
  t.throws(() => srv.open(frameOf(p1)), { code: 'IBP_ERR_TX_REPLAY' }, 'sequence 1 again');
  t.throws(() => srv.open(frameOf(encodePacket({ type: 'REQUEST', body: Buffer.from('x') }))), { code: 'IBP_ERR_TX_TAMPERED', message: /unsealed/ });
  const stripped = Buffer.from(p2);
  stripped[4] = stripped[4]! & ~FRAME_FLAG.ENCRYPTED;
  t.throws(() => srv.open(frameOf(stripped)), { code: 'IBP_ERR_TX_TAMPERED' }, 'the ENCRYPTED flag is authenticated');
  t.same(decodePacket(srv.open(frameOf(p2)), DEFAULT_LIMITS), { type: 'REQUEST', body: Buffer.from('x') }, 'the untouched packet still opens');
  const other = handshake(gate());
  t.throws(() => other.res.seal!.open(frameOf(h.clientSeal.seal(encodePacket({ type: 'REQUEST', body: Buffer.from('y') })))), { code: /IBP_ERR_TX_(TAMPERED|FOREIGN_KEY)/ }, 'a packet of another exchange');
});

t.test('the gate: negotiation matrix', async (t) => {
  for (const sign of ['none', 'optional', 'required'] as const) {
    const g = gate({ sign, encrypt: 'none' });
    const plain = g.judge(pre('CLI', 0).pre, undefined, {});
    t.equal(plain.granted, 0, `${sign}: unsigned gets no SIGN`);
    t.equal(plain.refusal?.code, sign === 'required' ? 'IBP_ERR_TX_UNPROTECTED' : undefined, `${sign}: unsigned ${sign === 'required' ? 'refused' : 'served'}`);
    const signed = handshake(g, client, 'CLI', TX_FLAG.SIGN);
    t.equal(signed.res.granted, sign === 'none' ? 0 : TX_FLAG.SIGN, `${sign}: signed is granted SIGN unless none`);
    t.equal(signed.res.seal !== undefined, sign !== 'none');
    t.notOk(signed.res.refusal);
  }
  const encReq = gate({ sign: 'required', encrypt: 'required' });
  t.equal(handshake(encReq, client, 'CLI', TX_FLAG.SIGN).res.refusal?.code, 'IBP_ERR_TX_UNPROTECTED', 'encryption required, signed only: refused');
  t.equal(handshake(encReq).res.granted, TX_FLAG.SIGN | TX_FLAG.ENCRYPT);
  t.same(policyOf({ sign_flag: 0, encrypt_flag: 1 }).sign, 'optional', 'encryption implies signing');
  t.throws(() => gate().judge(pre('CLI', TX_FLAG.SIGN).pre, undefined, {}), { code: 'IBP_ERR_PROTO_FRAME' }, 'SIGN asked, not sealed');
  t.equal(httpRefusal(policyOf({ sign_flag: 'required', encrypt_flag: 0 }), 'a')?.code, 'IBP_ERR_TX_UNPROTECTED');
  t.equal(httpRefusal(policyOf({ sign_flag: 'required', encrypt_flag: 0, http_unsigned_allow: ['a'] }), 'a'), undefined);
  t.equal(httpRefusal(policyOf({ sign_flag: 'optional', encrypt_flag: 0 }), 'a'), undefined);
});

t.test('the gate: keys of the wrong node, unknown, expired; replays; a forged signature', async (t) => {
  const g = gate();
  t.equal(handshake(g, other, 'CLI').res.refusal?.code, 'IBP_ERR_TX_FOREIGN_KEY', 'CLI claimed with the key of OTHER');
  t.equal(handshake(g, client, 'STRANGER').res.refusal?.code, 'IBP_ERR_TX_UNKNOWN_NODE');
  t.equal(handshake(g, expired, 'CLI').res.refusal?.code, 'IBP_ERR_TX_KEY_EXPIRED');
  const eph = new Ephemeral();
  const { frame } = sealPreRequest(pre().frame, client, server, eph);
  const r = received(frame);
  t.notOk(g.judge(r.pre, r.hello, {}).refusal, 'first time: accepted');
  t.throws(() => g.judge(r.pre, r.hello, {}), { code: 'IBP_ERR_TX_REPLAY', message: /nonce/ }, 'the same pre-request again');
  const old = received(sealPreRequest(pre().frame, client, server, eph, Date.now() - 3_600_000).frame);
  t.throws(() => g.judge(old.pre, old.hello, {}), { code: 'IBP_ERR_TX_REPLAY', message: /off this server's clock/ });
  const forged = Buffer.from(frame);
  forged[30]! ^= 0x01; // inside the pre-request body: journal J1 becomes K1
  const fr = received(forged);
  t.throws(() => gate().judge(fr.pre, fr.hello, {}), { code: 'IBP_ERR_TX_TAMPERED' }, 'a flipped bit in the signed pre-request');
  const noKey = new TxGate(policyOf({ sign_flag: 'required', encrypt_flag: 0 }), () => new StaticKeyring('SRV', [], [client]));
  const nr = received(sealPreRequest(pre().frame, client, server, new Ephemeral()).frame);
  t.throws(() => noKey.judge(nr.pre, nr.hello, {}), { code: 'IBP_ERR_TX_NO_KEY' }, 'a server key that is not (or no longer) the server\'s');
});

t.test('a sealed TX_CONTROL: its hello signs its type and body (op, journal, gtrid)', async (t) => {
  const ctl = encodePacket({ type: 'TX_CONTROL', op: 'COMMIT', journal: 'J1', gtrid: 'CLI.a.b.c' });
  const { frame } = sealPreRequest(ctl, client, server, new Ephemeral());
  const f = frameOf(frame);
  t.equal(f.type, FRAME_TYPE.TX_CONTROL, 'still a TX_CONTROL frame');
  t.equal(f.flags & FRAME_FLAG.SEALED, FRAME_FLAG.SEALED);
  const { inner, hello } = splitHello(f.body, f.type);
  t.match(decodePacket({ type: f.type, flags: 0, body: inner }, DEFAULT_LIMITS), { type: 'TX_CONTROL', op: 'COMMIT', journal: 'J1', gtrid: 'CLI.a.b.c' });
  t.notOk(gate().judge({ flags: TX_FLAG.SIGN | TX_FLAG.ENCRYPT, clientNode: 'CLI' }, hello, {}).refusal, 'judged as sent by the coordinator node CLI: accepted');
  t.equal(gate().judge({ flags: TX_FLAG.SIGN, clientNode: 'OTHER' }, splitHello(f.body, f.type).hello, {}).refusal?.code, 'IBP_ERR_TX_FOREIGN_KEY', 'judged as another node\'s decision: refused');
  t.throws(() => gate().judge({ flags: TX_FLAG.SIGN, clientNode: 'CLI' }, splitHello(f.body).hello, {}), { code: 'IBP_ERR_TX_TAMPERED' }, 'its hello read as a PRE_REQUEST\'s does not verify');
  const flipped = Buffer.from(frame);
  flipped[12 + 1 + 1 + 1]! ^= 0x01; // the journal J1 becomes J0
  const ff = frameOf(flipped);
  t.throws(() => gate().judge({ flags: TX_FLAG.SIGN, clientNode: 'CLI' }, splitHello(ff.body, ff.type).hello, {}), { code: 'IBP_ERR_TX_TAMPERED' }, 'a flipped bit in the decision');
});

t.test('resumed hellos: accepted only after a verified signed one on the same connection', async (t) => {
  const g = gate();
  const eph = new Ephemeral();
  const cache = {};
  const resumed = () => received(sealPreRequest(pre().frame, client, server, eph, Date.now(), true).frame);
  const r0 = resumed();
  t.equal(r0.hello.version, 2);
  t.throws(() => g.judge(r0.pre, r0.hello, cache), { code: 'IBP_ERR_TX_TAMPERED', message: /resumed hello without a verified signed one/ }, 'no signed hello before');
  const first = received(sealPreRequest(pre().frame, client, server, eph).frame);
  t.notOk(g.judge(first.pre, first.hello, cache).refusal, 'the signed hello');
  const r1 = resumed();
  const res = g.judge(r1.pre, r1.hello, cache);
  t.notOk(res.refusal, 'then a resumed one is accepted');
  t.ok(res.seal, 'with its exchange keys');
  const r2 = resumed();
  r2.hello.signature[3]! ^= 0x01;
  t.throws(() => g.judge(r2.pre, r2.hello, cache), { code: 'IBP_ERR_TX_TAMPERED', message: /resumption MAC/ }, 'a flipped bit in the MAC');
  const r3 = resumed();
  t.throws(() => g.judge(r3.pre, r3.hello, {}), { code: 'IBP_ERR_TX_TAMPERED' }, 'a resumed hello on another connection');
  const other = received(sealPreRequest(pre('OTHER').frame, other_, server, eph, Date.now(), true).frame);
  t.throws(() => g.judge(other.pre, other.hello, cache), { code: 'IBP_ERR_TX_TAMPERED' }, 'a resumed hello of another client key');
  t.throws(() => g.judge(r1.pre, r1.hello, cache), { code: 'IBP_ERR_TX_REPLAY' }, 'a resumed hello replayed');
});

t.test('every ibas.conf security key is in the schema and documented (docs/ibas.md, docs/security.md)', async (t) => {
  const fs = await import('node:fs');
  const { IbasConf } = await import('../../lib/config/ibas-conf.js');
  const keys = Object.keys((IbasConf.properties.security as { properties: Record<string, unknown> }).properties);
  t.ok(keys.includes('sign_flag') && keys.includes('encrypt_flag') && keys.includes('replay_window') && keys.includes('http_unsigned_allow'));
  const ibasDoc = fs.readFileSync(new URL('../../docs/ibas.md', import.meta.url), 'utf8');
  const secDoc = fs.readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  for (const k of keys) {
    t.ok(ibasDoc.includes(k), `docs/ibas.md names security.${k}`);
    t.ok(secDoc.includes(`security.${k}`), `docs/security.md names security.${k}`);
  }
  for (const v of ['none', 'optional', 'required']) t.ok(secDoc.includes(`\`${v}\``), `docs/security.md explains ${v}`);
});

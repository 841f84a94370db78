// Property test of the binary data path under hostile input (issue 9): fast-check builds
// connections of valid pipelined transactions followed by one "victim" transaction mutated in
// 1..3 ways (bit flips, truncation, wrong or huge lengths, frames dropped / duplicated / swapped,
// the lz4, sealed or encrypted flag set, an lz4 body declaring a huge size, garbage inserted), at least 10,000 frames
// in all, against a STATIC pool of 2 workers. Asserted for every connection:
//   - the valid transactions before the victim are answered exactly (PRE_ANSWER 0, echo RESPONSE);
//   - everything the server sends decodes as whole packets, every result code is one of the
//     table's, an ERROR is the last packet, and the victim is answered with a typed packet or the
//     connection is closed;
//   - the server closes the connection after the client's end (or, for the stalled ones that
//     never end, within its deadlines).
// And for the run: 0 worker crashes (same pids, no abnormal exit in the scoreboard or the monitor
// log) and worker RSS growth < 50 MB.
import t from 'tap';
import fs from 'node:fs';
import fc from 'fast-check';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { RawPeer } from './helpers/raw-peer.js';
import { encodePacket, TX_FLAG, type Packet } from '../../lib/protocol/codec.js';
import { FRAME_FLAG, FRAME_TYPE, FrameReader, limitsOf } from '../../lib/protocol/frame.js';
import { isResultCode, RC } from '../../lib/protocol/result-codes.js';
import { Scoreboard } from '../../ibas/scoreboard.js';
import { waitFor } from '../helpers/procs.js';
import { decodePacket } from '../../lib/protocol/codec.js';

const FRAMES = Number(process.env.FUZZ_FRAMES ?? 10_000);
const MAX_FRAME = 64 * 1024;
const PARALLEL = 4;

interface Tx { frames: Buffer[]; kind: 'tx' | 'keepalive'; body?: Buffer }
type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'length'; frame: number; value: number }
  | { op: 'drop' | 'dup' | 'lz4' | 'seal' | 'encrypt'; frame: number }
  | { op: 'swap'; frame: number; other: number }
  | { op: 'declare'; frame: number; size: number }
  | { op: 'garbage'; at: number; bytes: Uint8Array };

interface TxGen { keepalive: boolean; app: string; compress: boolean; files: number[]; body: number; journal: string }
const appArb = fc.constantFrom('ibp_test_echo', 'ibp_test_echo', 'ibp_test_echo', 'ibp_test_unknown_app', 'ibp_test_invalid');
const txArb: fc.Arbitrary<TxGen> = fc.record({
  keepalive: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  app: appArb,
  compress: fc.boolean(),
  files: fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 2 }),
  body: fc.integer({ min: 0, max: 2000 }),
  journal: fc.string({ maxLength: 20 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
});
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('length' as const), frame: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(0xffffffff, 0x7fffffff, 16 * 1024 * 1024)) }),
  fc.record({ op: fc.constantFrom('drop' as const, 'dup' as const, 'lz4' as const, 'seal' as const, 'encrypt' as const), frame: fc.nat() }),
  fc.record({ op: fc.constant('swap' as const), frame: fc.nat(), other: fc.nat() }),
  fc.record({ op: fc.constant('declare' as const), frame: fc.nat(), size: fc.constantFrom(0xffffffff, 256 * 1024 * 1024, 65 * 1024, 10) }),
  fc.record({ op: fc.constant('garbage' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
);
type ConnGen = { valid: TxGen[]; victim: TxGen; mutations: Mutation[]; stall: boolean };
const connArb: fc.Arbitrary<ConnGen> = fc.record({
  valid: fc.array(txArb, { minLength: 6, maxLength: 20, size: 'max' }),
  victim: txArb,
  mutations: fc.array(mutationArb, { minLength: 0, maxLength: 3 }),
  stall: fc.integer({ min: 0, max: 199 }).map((n) => n < 2),
});

/** The frames of one transaction (or a keep-alive), as a client would send them pipelined. */
function build(x: TxGen): Tx {
  if (x.keepalive) return { kind: 'keepalive', frames: [encodePacket({ type: 'KEEPALIVE' })] };
  const enc = x.compress ? { compressMin: 1 } : {};
  const body = Buffer.alloc(x.body, `fz${x.journal}`);
  const packets: Packet[] = [
    { type: 'PRE_REQUEST', flags: x.compress ? TX_FLAG.COMPRESS : 0, fileCount: x.files.length, timeoutMs: 0, clientNode: 'fuzz', app: x.app, journal: x.journal },
    ...x.files.map((n, index): Packet => ({ type: 'PUSH_FILE', index, name: `f${index}`, data: Buffer.alloc(n, index + 1) })),
    { type: 'REQUEST', body },
  ];
  // PRE_REQUEST itself is never compressed (nothing is granted before its answer)
  return { kind: 'tx', body, frames: packets.map((p, i) => encodePacket(p, i === 0 ? {} : enc)) };
}

function mutate(frames: Buffer[], ms: Mutation[]): Buffer {
  let fs2 = frames.map((f) => Buffer.from(f));
  const pick = (n: number) => n % Math.max(fs2.length, 1);
  for (const m of ms) {
    if (fs2.length === 0) break;
    // frame-level mutations need a whole header where they aim
    if ((m.op === 'length' || m.op === 'lz4' || m.op === 'seal' || m.op === 'encrypt' || m.op === 'declare') && fs2[pick(m.frame)]!.length < 12) continue;
    switch (m.op) {
      case 'length': fs2[pick(m.frame)]!.writeUInt32BE(m.value >>> 0, 8); break;
      case 'drop': fs2.splice(pick(m.frame), 1); break;
      case 'dup': { const i = pick(m.frame); fs2.splice(i, 0, Buffer.from(fs2[i]!)); break; }
      case 'lz4': fs2[pick(m.frame)]![4]! |= FRAME_FLAG.LZ4; break;
      case 'seal': fs2[pick(m.frame)]![4]! |= FRAME_FLAG.SEALED; break;
      case 'encrypt': fs2[pick(m.frame)]![4]! |= FRAME_FLAG.ENCRYPTED; break;
      case 'swap': { const i = pick(m.frame); const j = pick(m.other); [fs2[i], fs2[j]] = [fs2[j]!, fs2[i]!]; break; }
      case 'declare': {
        const i = pick(m.frame);
        const f = fs2[i]!;
        const body = Buffer.from([0, 0, 0, 0, 0x1f, 0x41, 0x01, 0x00, 0xff, 0xff, 0xff]);
        body.writeUInt32BE(m.size >>> 0, 0);
        const h = Buffer.from(f.subarray(0, 12));
        h[4] = 1;
        h.writeUInt32BE(body.length, 8);
        fs2[i] = Buffer.concat([h, body]);
        break;
      }
      default: {
        const all = Buffer.concat(fs2);
        if (all.length === 0) break;
        if (m.op === 'flip') all[m.at % all.length]! ^= 1 << m.bit;
        const at = m.op === 'garbage' || m.op === 'truncate' ? m.at % (all.length + 1) : 0;
        const out = m.op === 'truncate' ? all.subarray(0, at) : m.op === 'garbage' ? Buffer.concat([all.subarray(0, at), Buffer.from(m.bytes), all.subarray(at)]) : all;
        fs2 = [out];
      }
    }
  }
  return Buffer.concat(fs2);
}

const KNOWN_TYPES = new Set<number>(Object.values(FRAME_TYPE));
/** Types a client may open with on an idle connection (anything else there is out of sequence). */
const OPENERS = new Set<number>([FRAME_TYPE.PRE_REQUEST, FRAME_TYPE.KEEPALIVE, FRAME_TYPE.TX_CONTROL]);

/**
 * The result codes an ERROR must carry when the victim's first frame is wrong by its header alone
 * (the connection is idle there: every earlier transaction is complete and nothing is granted),
 * or undefined when the header alone does not decide.
 */
function headerVerdict(b: Buffer): number[] | undefined {
  if (b.length < 12) return undefined;
  if (b[0] !== 0x49 || b[1] !== 0x42) return [RC.PROTO_FRAME];
  if (b[2] !== 1) return [RC.PROTO_VERSION];
  if (!KNOWN_TYPES.has(b[3]!)) return [RC.PROTO_FRAME];
  const flags = b[4]!;
  if ((flags & ~(FRAME_FLAG.LZ4 | FRAME_FLAG.SEALED | FRAME_FLAG.ENCRYPTED)) !== 0 || b[5] || b[6] || b[7]) return [RC.PROTO_FRAME];
  if ((flags & FRAME_FLAG.ENCRYPTED) !== 0 && (flags & FRAME_FLAG.SEALED) === 0) return [RC.PROTO_FRAME];
  const length = b.readUInt32BE(8);
  if (length > MAX_FRAME) return [RC.PROTO_TOO_LARGE];
  if (flags & FRAME_FLAG.LZ4) return [RC.PROTO_NOT_GRANTED];
  const whole = b.length >= 12 + length;
  if (flags & FRAME_FLAG.SEALED) {
    // nothing is granted on an idle connection: only a hello-bearing opener may be sealed, and never encrypted
    if (!whole) return undefined;
    if (b[3] !== FRAME_TYPE.PRE_REQUEST && b[3] !== FRAME_TYPE.TX_CONTROL) return [RC.TX_NOT_GRANTED];
    if (flags & FRAME_FLAG.ENCRYPTED) return [RC.PROTO_FRAME];
    return undefined; // the hello inside decides
  }
  if (!OPENERS.has(b[3]!) && whole) return [RC.PROTO_SEQUENCE, RC.PROTO_FRAME];
  return undefined;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Decode what the server sent; throws when it is not a sequence of whole valid packets. */
function answers(bytes: Buffer): Packet[] {
  const limits = limitsOf({ maxFrame: 1 << 24, maxFile: 1 << 24, maxFiles: 1024 });
  const r = new FrameReader(limits.maxFrame);
  const out = r.push(bytes).map((f) => decodePacket(f, limits));
  r.end(); // a cut last frame throws
  return out;
}

t.test(`fuzzed frames: ${FRAMES} frames against a pool of 2`, async (t) => {
  const s = await setupIbas(t, {
    maxCount: 2,
    patch: (c) => {
      Object.assign(c.comm, { max_frame_size: MAX_FRAME, max_file_size: 32 * 1024, max_files: 4, max_files_bytes: 48 * 1024, header_timeout: 1, request_timeout: 2, keepalive_timeout: 2, send_timeout: 2 });
      c.security.compress_flag = 1;
    },
  });
  await s.start();
  const workers = await waitWorkers(s, 2);
  const pids = workers.map((w) => w.pid);
  // warm the app and both workers, then take the RSS baseline
  for (let i = 0; i < 10; i++) await callOnce(s.ip, s.port, 'ibp_test_echo', `warm${i}`);
  const rss0 = pids.map(rssKb);

  let frames = 0;
  let conns = 0;
  const failures: string[] = [];
  const tally = new Map<string, number>();
  const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const started = Date.now();

  /** One connection of the property; failures are collected with their counterexample. */
  const one = async (c: ConnGen): Promise<boolean> => {
    if (frames >= FRAMES) return true;
    const valid = c.valid.map(build);
    const victim = build(c.victim);
    const bad = mutate(victim.frames, c.mutations);
    frames += valid.reduce((n, x) => n + x.frames.length, 0) + victim.frames.length;
    conns++;
    let p: RawPeer;
    try {
      p = await RawPeer.connect(s.ip, s.port, 10_000);
    } catch (e) {
      return failures.push(`connect failed: ${(e as Error).message}`) > 0;
    }
    try {
      p.write(Buffer.concat([...valid.flatMap((x) => x.frames), bad]));
      if (!c.stall) p.socket.end(); // our side is done: the server must answer what it can and close
      await p.waitClosed(c.stall ? 8000 : 6000).catch(() => undefined);
      const why = (m: string) => `${m} (valid ${valid.length}, mutations ${JSON.stringify(c.mutations, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}, stall ${c.stall}, victim ${JSON.stringify({ ...c.victim, journal: undefined })})`;
      if (!p.closed) return failures.push(why('the server did not close the connection')) > 0;
      const sent = Buffer.concat([...valid.flatMap((x) => x.frames), bad]);
      if (sent.length >= 2 && (sent[0] !== 0x49 || sent[1] !== 0x42)) {
        // not the binary protocol's magic: the HTTP adapter judges it — a 4xx status line or a bare close
        const text = p.bytes().toString('latin1');
        if (text !== '' && !/^HTTP\/1\.1 4\d\d /.test(text)) return failures.push(why(`non-IB bytes answered ${JSON.stringify(text.slice(0, 40))}`)) > 0;
        count(text === '' ? 'not IB: closed' : `not IB: HTTP ${text.slice(9, 12)}`);
        return true;
      }
      let got: Packet[];
      try {
        got = answers(p.bytes());
      } catch (e) {
        return failures.push(why(`the server sent bytes that are not whole packets: ${(e as Error).message}`)) > 0;
      }
      // the valid prefix, answered exactly and in order
      let i = 0;
      for (const v of valid) {
        if (v.kind === 'keepalive') {
          if (got[i++]?.type !== 'KEEPALIVE_ACK') return failures.push(why(`keep-alive not acknowledged`)) > 0;
          continue;
        }
        const pa = got[i++];
        const r = got[i++];
        if (pa?.type !== 'PRE_ANSWER' || r?.type !== 'RESPONSE') return failures.push(why(`valid transaction not answered: ${pa?.type} ${r?.type}`)) > 0;
        const echo = r.rc === RC.OK && r.body.equals(v.body!);
        const refused = pa.rc !== RC.OK && r.rc === pa.rc; // unknown / invalid app: typed refusal
        if (!echo && !refused) return failures.push(why(`valid transaction answered wrong: pre ${pa.rc} rc ${r.rc} ${r.message}`)) > 0;
      }
      const rest = got.slice(i);
      for (const x of rest) {
        if ('rc' in x && !isResultCode(x.rc)) return failures.push(why(`untyped result code ${x.rc}`)) > 0;
        if (x.type === 'ERROR' && x.rc === RC.OK) return failures.push(why('an ERROR with rc 0')) > 0;
      }
      const err = rest.findIndex((x) => x.type === 'ERROR');
      if (err >= 0 && err !== rest.length - 1) return failures.push(why('packets after an ERROR')) > 0;
      // a victim whose first header is wrong by itself must get the typed ERROR for it
      const verdict = headerVerdict(bad);
      if (verdict) {
        const e = rest[err];
        if (rest.length !== 1 || e?.type !== 'ERROR' || !verdict.includes(e.rc)) {
          return failures.push(why(`header ${bad.subarray(0, 12).toString('hex')} must be answered by one ERROR ${verdict.join('|')}, got ${rest.map((x) => `${x.type} ${'rc' in x ? x.rc : ''}`).join(', ') || 'nothing'}`)) > 0;
        }
        count('judged by its header');
      }
      count(err >= 0 ? `ERROR ${(rest[err] as { rc: number }).rc}` : rest.some((x) => x.type === 'RESPONSE') ? 'RESPONSE' : rest.length ? 'partial answer, closed' : 'closed');
      return true;
    } catch (e) {
      return failures.push(`the check itself failed: ${(e as Error).stack}`) > 0;
    } finally {
      p.close();
    }
  };
  // PARALLEL connections at a time (more than the pool: the accept queue holds the others)
  await fc.assert(fc.asyncProperty(fc.array(connArb, { minLength: PARALLEL, maxLength: PARALLEL }), async (cs) => (await Promise.all(cs.map(one))).every(Boolean)),
    { numRuns: 5000, interruptAfterTimeLimit: 150_000, endOnFailure: true });

  t.ok(frames >= FRAMES, `${frames} frames sent on ${conns} connections in ${Date.now() - started} ms`);
  t.same(failures.slice(0, 5), [], `every connection answered with typed packets or closed (${failures.length} failed)`);
  t.comment(`outcomes of the mutated transactions: ${JSON.stringify(Object.fromEntries(tally))}`);
  t.ok(tally.size > 2, 'the mutations reached several different outcomes');

  const now = await waitWorkers(s, 2);
  t.same(now.map((w) => w.pid).sort(), [...pids].sort(), 'the same two workers: 0 crashes');
  const sb = Scoreboard.attach(s.scoreboardKey)!;
  const deaths = sb.header().deaths;
  sb.detach();
  t.equal(deaths, 0, 'no abnormal exit in the scoreboard');
  t.notMatch(s.log('monitor'), /worker (exited|crashed)/, 'no worker exit in the monitor log');
  const rss1 = pids.map(rssKb);
  const growthMb = Math.max(...rss1.map((r, k) => (r - rss0[k]!) / 1024));
  t.ok(rss0.every((r) => r > 0) && growthMb < 50, `worker RSS growth ${growthMb.toFixed(1)} MB < 50 MB (${rss0.join(',')} → ${rss1.join(',')} kB)`);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'after the fuzz')).body.toString(), 'after the fuzz', 'the pool serves on');
  await waitFor('the pool idle', () => s.slots().every((w) => w.state === 'LISTEN' || w.state === 'IDLE'), 10_000);
  t.equal((await s.stop()).code, 0);
});

/**
 * Signed and encrypted transactions by hand, for test/ibas/tx-*.test.ts: node keys published in a
 * test server's config space (through the real writer, as ibma does) with the server's private key
 * file in keys/ (as ibma writes it), and a raw peer that seals its packets with
 * lib/protocol/tx-crypto.ts and opens the server's.
 */
import fs from 'node:fs';
import { writePrivateKeyFile } from '../../../lib/node-key-files.js';
import { generateNodeKey, nodeKeyToWire, nodePrivateKeyToWire, type NodePrivateKey, type NodePublicKey } from '../../../lib/node-keys.js';
import { decodePacket, encodePacket, TX_FLAG, type Packet } from '../../../lib/protocol/codec.js';
import { FRAME_FLAG, FrameReader, limitsOf } from '../../../lib/protocol/frame.js';
import { Ephemeral, sealPreRequest, TxSeal } from '../../../lib/protocol/tx-crypto.js';
import { waitFor } from '../../helpers/procs.js';
import { RawPeer } from './raw-peer.js';
import { NODE, setupIbas, waitWorkers, type IbasHome, type IbasSetup } from './server.js';

export const limits = limitsOf({ maxFrame: 64 * 1024 * 1024 });
export const serverKey = generateNodeKey(NODE, 0);
export const clientKey = generateNodeKey('txc_client', 0);
export const otherKey = generateNodeKey('txc_other', 0);
export const expiredKey = generateNodeKey('txc_client', 0, Date.now() - 60_000);
export const published = [serverKey, clientKey, otherKey, expiredKey];

/** The node's private key file, as ibma writes it. */
export function writePrivate(s: IbasHome, k: NodePrivateKey): void {
  const dir = `${s.home}/keys`;
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o700);
  writePrivateKeyFile(dir, nodePrivateKeyToWire(k));
}

export async function server(t: Tap.Test, security: Record<string, unknown>, o: Pick<IbasSetup, 'maxCount' | 'apps'> = {}): Promise<IbasHome> {
  const s = await setupIbas(t, { maxCount: 1, ...o, nodes: ['txc_client', 'txc_other'], nodeKeys: published.map(nodeKeyToWire), patch: (c) => { Object.assign(c.security, security); } });
  writePrivate(s, serverKey);
  await s.start();
  t.teardown(() => s.stop());
  await waitWorkers(s, o.maxCount ?? 1);
  return s;
}

/** A raw connection that opens sealed answers with the exchange's seal. */
export class Peer {
  seal: TxSeal | undefined;
  readonly eph = new Ephemeral();
  readonly packets: Packet[] = [];
  readonly #reader = new FrameReader(limits.maxFrame);
  #fed = 0;
  private constructor(readonly raw: RawPeer) {}
  /** Open a connection; it is closed at the end of `tt` (the pool has one worker: close early). */
  static async open(tt: Tap.Test, s: { ip: string; port: number }): Promise<Peer> {
    const p = new Peer(await RawPeer.connect(s.ip, s.port));
    tt.teardown(() => p.raw.close());
    return p;
  }
  #pump(): void {
    const b = this.raw.bytes();
    if (b.length === this.#fed) return;
    for (const f of this.#reader.push(b.subarray(this.#fed))) {
      this.packets.push(decodePacket((f.flags & FRAME_FLAG.SEALED) !== 0 ? this.seal!.open(f) : f, limits));
    }
    this.#fed = b.length;
  }
  /** Wait for the n-th packet (counting from the connection's start). */
  async upTo(n: number): Promise<Packet[]> {
    return waitFor(`${n} packets`, () => {
      this.#pump();
      return this.packets.length >= n ? this.packets : undefined;
    }, 15_000, 10);
  }
  /**
   * One pipelined exchange: returns the frames written (pre-request first) without sending when
   * `send` is false. `own` undefined: unsigned.
   */
  frames(o: { own?: NodePrivateKey; node?: string; encrypt?: boolean; files?: Buffer[]; request: Buffer; journal?: string; serverKey?: NodePublicKey; app?: string; prepare?: boolean; gtrid?: string }): Buffer[] {
    const flags = (o.own ? TX_FLAG.SIGN | (o.encrypt ? TX_FLAG.ENCRYPT : 0) : 0) | (o.prepare ? TX_FLAG.PREPARE : 0);
    const files = o.files ?? [];
    const pre = encodePacket({ type: 'PRE_REQUEST', flags, fileCount: files.length, timeoutMs: 5000, clientNode: o.node ?? o.own?.node ?? 'txc_client', app: o.app ?? 'ibp_test_echo', journal: o.journal ?? 'J', gtrid: o.gtrid ?? '' });
    const out: Buffer[] = [];
    let enc = (b: Buffer): Buffer => b;
    if (o.own) {
      const to = o.serverKey ?? serverKey;
      const sealed = sealPreRequest(pre, o.own, to, this.eph);
      const seal = new TxSeal('client', sealed.keys, o.own.kcv, to.kcv, o.encrypt === true);
      this.seal = seal;
      out.push(sealed.frame);
      enc = (b) => seal.seal(b);
    } else {
      this.seal = undefined;
      out.push(pre);
    }
    files.forEach((data, index) => out.push(enc(encodePacket({ type: 'PUSH_FILE', index, name: `f${index}.txt`, data }))));
    out.push(enc(encodePacket({ type: 'REQUEST', body: o.request })));
    return out;
  }
  /** A two-phase decision (TX_CONTROL), sealed with a hello when `own` is given (its answer opens with the seal). */
  control(o: { op: 'COMMIT' | 'ROLLBACK'; gtrid: string; journal: string; own?: NodePrivateKey }): Buffer {
    const frame = encodePacket({ type: 'TX_CONTROL', op: o.op, gtrid: o.gtrid, journal: o.journal });
    if (!o.own) {
      this.seal = undefined;
      return frame;
    }
    const sealed = sealPreRequest(frame, o.own, serverKey, this.eph);
    this.seal = new TxSeal('client', sealed.keys, o.own.kcv, serverKey.kcv, false);
    return sealed.frame;
  }
}

export function only<T extends Packet['type']>(p: Packet | undefined, type: T): Extract<Packet, { type: T }> {
  if (p?.type !== type) throw new Error(`expected ${type}, got ${p?.type ?? 'nothing'}`);
  return p as Extract<Packet, { type: T }>;
}


/**
 * Reading one config segment straight from the shared bytes: header check at attach, hash-table
 * lookups by name, and decoding of only the record asked for. Every offset and index read from shm
 * is checked against the regions of the segment, so a corrupt segment raises IBP_ERR_SHM_LAYOUT
 * instead of reading outside it. The host load and retry-connect time are the only fields that
 * change after publication; they are read and written with Atomics.
 *
 * Layout: lib/shm/layout.ts (and docs/ARCHITECTURE.md §5).
 */
import { IbpError } from '../errors.js';
import { APP, CONFIG_MAGIC, HEADER, HOST, KV, LAYOUT_VERSION, NODE, NODE_KEY, READY_VALUE, hashString, kvHash } from './layout.js';
import type { Segment } from './sysv.js';

export interface SpaceHeader {
  thisNode: string;
  generation: number;
  /** ms since the epoch. */
  buildTime: number;
  ibms: { ip: string; port: number };
  /** Seconds. */
  connectingTimeout: number;
  /** Seconds. */
  retryConnectTimeval: number;
  minCompressSize: number;
  nodeCount: number;
  hostCount: number;
  appCount: number;
  kvCount: number;
  /** NodeBundle.epoch and .version this segment was built from. */
  epoch: string;
  bundleVersion: number;
  /** The package-signing public key ibma trusts, base64 SPKI DER ('' when none). */
  packageKey: string;
}

export interface NodeView {
  name: string;
  invalid: number;
  keyExp: string;
  /** Index of its first host in the host array of the segment. */
  firstHost: number;
  hostCount: number;
}

export interface HostView {
  /** The host's slot in this segment: the argument of getHostLoad/setHostLoad/getRetryAt/setRetryAt. */
  index: number;
  ip: string;
  port: number;
  invalid: number;
}

export interface AppView {
  app: string;
  desc: string;
  bin: string;
  /** Client timeout, seconds. */
  timeout: number;
  /** Server timeout, seconds, effective (0 in the config → timeout × 1.5). */
  timeout2: number;
  serverNode: string;
  invalid: number;
  /** Hex sha256 of the package, signed by the registry and verified by ibma ('' when none). */
  sha256: string;
  packageSize: number;
  /** The signed manifest vouching for sha256 (canonical JSON, lib/package-signing.ts; '' when none). */
  manifest: string;
  /** base64 Ed25519 signature of manifest ('' when none). */
  signature: string;
  /** Signed sha256 of a package ibma is installing now ('' when none): accepted besides sha256. */
  sha256Next: string;
}

/** A node's public key pair as the config space holds it (lib/node-keys.ts NodeKeyWire). */
export interface NodeKeyView {
  node: string;
  kcv: string;
  /** Raw 32-byte keys in base64url. */
  signPublic: string;
  agreePublic: string;
  /** ms since the epoch; 0 = at once / never. */
  enableAt: number;
  disableAt: number;
}

/** Decoded strings a view keeps at most (then it starts over). */
const STRING_CACHE_MAX = 65536;

/** A validated view of one config segment. Does not own the attachment. */
export class ConfigView {
  readonly seg: Segment;
  readonly #buf: Buffer;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #used: number;
  readonly #nodeCount: number;
  readonly #hostCount: number;
  readonly #appCount: number;
  readonly #kvCount: number;
  readonly #nodeSlots: number;
  readonly #appSlots: number;
  readonly #kvSlots: number;
  readonly #nodeTable: number;
  readonly #nodeRecords: number;
  readonly #hostRecords: number;
  readonly #appTable: number;
  readonly #appRecords: number;
  readonly #kvTable: number;
  readonly #kvRecords: number;
  readonly #nodeKeyCount: number;
  readonly #nodeKeyRecords: number;
  readonly #strings: number;
  readonly #stringsEnd: number;
  readonly generation: number;
  /** Decoded strings by reference (see #str). */
  readonly #decoded = new Map<number, string>();

  /** Validate the header and every region of a config segment; throws IBP_ERR_SHM_LAYOUT. */
  constructor(seg: Segment) {
    this.seg = seg;
    const buf = seg.buf;
    this.#buf = buf;
    this.#u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    this.#i32 = seg.i32;
    this.#i64 = new BigInt64Array(buf.buffer, buf.byteOffset, buf.length >>> 3);
    if (buf.length < HEADER.SIZE) this.#corrupt(`a segment of ${buf.length} bytes, smaller than the header`);
    const magic = buf.readUInt32LE(HEADER.MAGIC);
    if (magic !== CONFIG_MAGIC) this.#corrupt(`magic 0x${magic.toString(16)} (not an IBP config segment)`);
    const version = buf.readUInt32LE(HEADER.VERSION);
    if (version !== LAYOUT_VERSION) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `version ${version}`, expected: `version ${LAYOUT_VERSION}` });
    }
    if (Atomics.load(this.#i32, HEADER.READY >> 2) !== READY_VALUE) this.#corrupt('a segment that is not complete (ready word unset)');
    const h = (off: number) => this.#u32[off >> 2]!;
    this.#used = h(HEADER.USED_SIZE);
    if (this.#used < HEADER.SIZE || this.#used > buf.length) this.#corrupt(`used size ${this.#used} outside the segment of ${buf.length} bytes`);
    this.generation = h(HEADER.GENERATION);
    this.#nodeCount = h(HEADER.NODE_COUNT);
    this.#hostCount = h(HEADER.HOST_COUNT);
    this.#appCount = h(HEADER.APP_COUNT);
    this.#kvCount = h(HEADER.KV_COUNT);
    this.#nodeSlots = h(HEADER.NODE_SLOTS);
    this.#appSlots = h(HEADER.APP_SLOTS);
    this.#kvSlots = h(HEADER.KV_SLOTS);
    this.#nodeTable = this.#region('node table', h(HEADER.NODE_TABLE), this.#nodeSlots, 4);
    this.#nodeRecords = this.#region('node records', h(HEADER.NODE_RECORDS), this.#nodeCount, NODE.SIZE);
    this.#hostRecords = this.#region('host records', h(HEADER.HOST_RECORDS), this.#hostCount, HOST.SIZE, 8);
    this.#appTable = this.#region('app table', h(HEADER.APP_TABLE), this.#appSlots, 4);
    this.#appRecords = this.#region('app records', h(HEADER.APP_RECORDS), this.#appCount, APP.SIZE, 8);
    this.#kvTable = this.#region('kv table', h(HEADER.KV_TABLE), this.#kvSlots, 4);
    this.#kvRecords = this.#region('kv records', h(HEADER.KV_RECORDS), this.#kvCount, KV.SIZE);
    this.#nodeKeyCount = h(HEADER.NODE_KEY_COUNT);
    // a segment from before node keys has 0 and 0 here
    this.#nodeKeyRecords = this.#nodeKeyCount === 0 ? 0 : this.#region('node key records', h(HEADER.NODE_KEY_RECORDS), this.#nodeKeyCount, NODE_KEY.SIZE, 8);
    this.#strings = this.#region('string area', h(HEADER.STRINGS), h(HEADER.STRINGS_SIZE), 1);
    this.#stringsEnd = this.#strings + h(HEADER.STRINGS_SIZE);
    for (const [what, slots, count] of [['node', this.#nodeSlots, this.#nodeCount], ['app', this.#appSlots, this.#appCount], ['kv', this.#kvSlots, this.#kvCount]] as const) {
      if (slots < 2 || (slots & (slots - 1)) !== 0 || slots <= count) this.#corrupt(`${what} table of ${slots} slots for ${count} records`);
    }
  }

  get key(): number {
    return this.seg.key;
  }

  header(): SpaceHeader {
    const b = this.#buf;
    return {
      thisNode: this.#str(this.#u32[HEADER.THIS_NODE >> 2]!),
      generation: this.generation,
      buildTime: b.readDoubleLE(HEADER.BUILD_TIME),
      ibms: { ip: this.#str(this.#u32[HEADER.IBMS_IP >> 2]!), port: this.#u32[HEADER.IBMS_PORT >> 2]! },
      connectingTimeout: b.readDoubleLE(HEADER.CONNECTING_TIMEOUT),
      retryConnectTimeval: b.readDoubleLE(HEADER.RETRY_CONNECT_TIMEVAL),
      minCompressSize: this.#u32[HEADER.MIN_COMPRESS_SIZE >> 2]!,
      nodeCount: this.#nodeCount,
      hostCount: this.#hostCount,
      appCount: this.#appCount,
      kvCount: this.#kvCount,
      epoch: this.#str(this.#u32[HEADER.EPOCH >> 2]!),
      bundleVersion: b.readDoubleLE(HEADER.BUNDLE_VERSION),
      packageKey: this.#str(this.#u32[HEADER.PACKAGE_KEY >> 2]!),
    };
  }

  // ---- nodes ---------------------------------------------------------------------------------

  /** Index of the node record named `name`, or -1. */
  nodeIndex(name: string): number {
    const hash = hashString(name);
    const mask = this.#nodeSlots - 1;
    for (let probe = 0, slot = hash & mask; probe < this.#nodeSlots; probe++, slot = (slot + 1) & mask) {
      const v = this.#u32[(this.#nodeTable >> 2) + slot]!;
      if (v === 0) return -1;
      const i = this.#recordIndex('node', v, this.#nodeCount);
      const rec = this.#nodeRecords + i * NODE.SIZE;
      if (this.#u32[(rec + NODE.HASH) >> 2] === hash && this.#strEquals(this.#u32[(rec + NODE.NAME) >> 2]!, name)) return i;
    }
    return -1;
  }

  node(name: string): NodeView | undefined {
    const i = this.nodeIndex(name);
    return i < 0 ? undefined : this.nodeAt(i);
  }

  nodeAt(i: number): NodeView {
    const rec = this.#nodeRecords + this.#checkIndex('node', i, this.#nodeCount) * NODE.SIZE;
    const w = rec >> 2;
    const firstHost = this.#u32[w + (NODE.FIRST_HOST >> 2)]!;
    const hostCount = this.#u32[w + (NODE.HOST_COUNT >> 2)]!;
    if (firstHost + hostCount > this.#hostCount) this.#corrupt(`node record ${i} has hosts ${firstHost}+${hostCount} of ${this.#hostCount}`);
    return {
      name: this.#str(this.#u32[w + (NODE.NAME >> 2)]!),
      invalid: this.#u32[w + (NODE.INVALID >> 2)]!,
      keyExp: this.#str(this.#u32[w + (NODE.KEY_EXP >> 2)]!),
      firstHost,
      hostCount,
    };
  }

  nodes(): NodeView[] {
    const out: NodeView[] = [];
    for (let i = 0; i < this.#nodeCount; i++) out.push(this.nodeAt(i));
    return out;
  }

  // ---- hosts ---------------------------------------------------------------------------------

  hosts(node: string): HostView[] {
    const n = this.nodeIndex(node);
    if (n < 0) return [];
    const v = this.nodeAt(n);
    const out: HostView[] = [];
    for (let i = v.firstHost; i < v.firstHost + v.hostCount; i++) out.push(this.hostAt(i));
    return out;
  }

  hostAt(i: number): HostView {
    const w = (this.#hostRecords + this.#checkIndex('host', i, this.#hostCount) * HOST.SIZE) >> 2;
    return {
      index: i,
      ip: this.#str(this.#u32[w + (HOST.IP >> 2)]!),
      port: this.#u32[w + (HOST.PORT >> 2)]!,
      invalid: this.#u32[w + (HOST.INVALID >> 2)]!,
    };
  }

  getHostLoad(i: number): number {
    return Atomics.load(this.#i32, this.#hostWord(i) + (HOST.LOAD >> 2));
  }

  /** ONE compare-and-swap; false when another writer changed the load first (the update is lost, as in IBP). */
  setHostLoad(i: number, expected: number, value: number): boolean {
    const w = this.#hostWord(i) + (HOST.LOAD >> 2);
    return Atomics.compareExchange(this.#i32, w, expected | 0, value | 0) === (expected | 0);
  }

  getRetryAt(i: number): number {
    return Number(Atomics.load(this.#i64, this.#hostSlot64(i)));
  }

  /** ONE compare-and-swap of the retry-connect time (ms since the epoch; 0 = not suspended). */
  setRetryAt(i: number, expected: number, value: number): boolean {
    const e = BigInt(Math.trunc(expected));
    return Atomics.compareExchange(this.#i64, this.#hostSlot64(i), e, BigInt(Math.trunc(value))) === e;
  }

  // ---- apps ----------------------------------------------------------------------------------

  appIndex(code: string): number {
    const hash = hashString(code);
    const mask = this.#appSlots - 1;
    for (let probe = 0, slot = hash & mask; probe < this.#appSlots; probe++, slot = (slot + 1) & mask) {
      const v = this.#u32[(this.#appTable >> 2) + slot]!;
      if (v === 0) return -1;
      const i = this.#recordIndex('app', v, this.#appCount);
      const rec = this.#appRecords + i * APP.SIZE;
      if (this.#u32[(rec + APP.HASH) >> 2] === hash && this.#strEquals(this.#u32[(rec + APP.CODE) >> 2]!, code)) return i;
    }
    return -1;
  }

  app(code: string): AppView | undefined {
    const i = this.appIndex(code);
    return i < 0 ? undefined : this.appAt(i);
  }

  appAt(i: number): AppView {
    const rec = this.#appRecords + this.#checkIndex('app', i, this.#appCount) * APP.SIZE;
    const w = rec >> 2;
    return {
      app: this.#str(this.#u32[w + (APP.CODE >> 2)]!),
      desc: this.#str(this.#u32[w + (APP.DESC >> 2)]!),
      bin: this.#str(this.#u32[w + (APP.BIN >> 2)]!),
      timeout: this.#buf.readDoubleLE(rec + APP.TIMEOUT),
      timeout2: this.#buf.readDoubleLE(rec + APP.TIMEOUT2),
      serverNode: this.#str(this.#u32[w + (APP.SERVER_NODE >> 2)]!),
      invalid: this.#u32[w + (APP.INVALID >> 2)]!,
      sha256: this.#str(this.#u32[w + (APP.SHA256 >> 2)]!),
      packageSize: this.#u32[w + (APP.PACKAGE_SIZE >> 2)]!,
      manifest: this.#str(this.#u32[w + (APP.MANIFEST >> 2)]!),
      signature: this.#str(this.#u32[w + (APP.SIGNATURE >> 2)]!),
      sha256Next: this.#str(this.#u32[w + (APP.SHA256_NEXT >> 2)]!),
    };
  }

  apps(): AppView[] {
    const out: AppView[] = [];
    for (let i = 0; i < this.#appCount; i++) out.push(this.appAt(i));
    return out;
  }

  // ---- key/values ----------------------------------------------------------------------------

  kv(node: string, key: string): string | undefined {
    const n = this.nodeIndex(node);
    if (n < 0) return undefined;
    const hash = kvHash(n, hashString(key));
    const mask = this.#kvSlots - 1;
    for (let probe = 0, slot = hash & mask; probe < this.#kvSlots; probe++, slot = (slot + 1) & mask) {
      const v = this.#u32[(this.#kvTable >> 2) + slot]!;
      if (v === 0) return undefined;
      const w = (this.#kvRecords + this.#recordIndex('kv', v, this.#kvCount) * KV.SIZE) >> 2;
      if (this.#u32[w + (KV.HASH >> 2)] === hash && this.#u32[w + (KV.NODE >> 2)] === n && this.#strEquals(this.#u32[w + (KV.KEY >> 2)]!, key)) {
        return this.#str(this.#u32[w + (KV.VALUE >> 2)]!);
      }
    }
    return undefined;
  }

  kvs(node: string): [string, string][] {
    const n = this.nodeIndex(node);
    if (n < 0) return [];
    const nw = (this.#nodeRecords + n * NODE.SIZE) >> 2;
    const first = this.#u32[nw + (NODE.FIRST_KV >> 2)]!;
    const count = this.#u32[nw + (NODE.KV_COUNT >> 2)]!;
    if (first + count > this.#kvCount) this.#corrupt(`node record ${n} has kvs ${first}+${count} of ${this.#kvCount}`);
    const out: [string, string][] = [];
    for (let i = first; i < first + count; i++) {
      const w = (this.#kvRecords + i * KV.SIZE) >> 2;
      out.push([this.#str(this.#u32[w + (KV.KEY >> 2)]!), this.#str(this.#u32[w + (KV.VALUE >> 2)]!)]);
    }
    return out;
  }

  // ---- node keys -----------------------------------------------------------------------------

  get nodeKeyCount(): number {
    return this.#nodeKeyCount;
  }

  /** Every node key record, in record order (grouped by node). */
  nodeKeys(): NodeKeyView[] {
    const out: NodeKeyView[] = [];
    for (let i = 0; i < this.#nodeKeyCount; i++) {
      const off = this.#nodeKeyRecords + i * NODE_KEY.SIZE;
      const w = off >> 2;
      const n = this.#u32[w + (NODE_KEY.NODE >> 2)]!;
      if (n >= this.#nodeCount) this.#corrupt(`node key record ${i} points at node record ${n} of ${this.#nodeCount}`);
      out.push({
        node: this.#str(this.#u32[((this.#nodeRecords + n * NODE.SIZE) >> 2) + (NODE.NAME >> 2)]!),
        kcv: this.#str(this.#u32[w + (NODE_KEY.KCV >> 2)]!),
        signPublic: this.#str(this.#u32[w + (NODE_KEY.SIGN_PUBLIC >> 2)]!),
        agreePublic: this.#str(this.#u32[w + (NODE_KEY.AGREE_PUBLIC >> 2)]!),
        enableAt: this.#buf.readDoubleLE(off + NODE_KEY.ENABLE_AT),
        disableAt: this.#buf.readDoubleLE(off + NODE_KEY.DISABLE_AT),
      });
    }
    return out;
  }

  // ---- checked access ------------------------------------------------------------------------

  #hostWord(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.#hostCount) {
      throw new IbpError('IBP_ERR_SHM_ARG', { arg: 'host index', detail: `${i} is not in 0..${this.#hostCount - 1} of segment ${this.seg.key} (take it from hosts())` });
    }
    return (this.#hostRecords + i * HOST.SIZE) >> 2;
  }

  #hostSlot64(i: number): number {
    return ((this.#hostWord(i) << 2) + HOST.RETRY_AT) >> 3;
  }

  #region(what: string, off: number, count: number, size: number, alignTo = 4): number {
    const end = off + count * size;
    if (off < HEADER.SIZE || off % alignTo !== 0 || !Number.isSafeInteger(end) || end > this.#used) {
      this.#corrupt(`${what} at ${off} (${count} × ${size} bytes) outside the ${this.#used} bytes in use`);
    }
    return off;
  }

  #recordIndex(what: string, slotValue: number, count: number): number {
    const i = slotValue - 1;
    if (i >= count) this.#corrupt(`${what} table slot points at record ${i} of ${count}`);
    return i;
  }

  #checkIndex(what: string, i: number, count: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= count) {
      throw new IbpError('IBP_ERR_SHM_ARG', { arg: `${what} index`, detail: `${i} is not in 0..${count - 1}` });
    }
    return i;
  }

  /** Byte length of the string at `ref`, checked against the string area (its bytes follow at ref + 4). */
  #strLength(ref: number): number {
    if (ref < this.#strings || (ref & 3) !== 0 || ref + 4 > this.#stringsEnd) this.#corrupt(`string reference ${ref} outside the string area`);
    const len = this.#u32[ref >> 2]!;
    if (len > this.#stringsEnd - ref - 4) this.#corrupt(`string at ${ref} of ${len} bytes runs past the string area`);
    return len;
  }

  /**
   * Decode the string at `ref`. Strings of a segment never change, so decoded ones are kept in a
   * bounded per-segment cache (cleared when full): hot lookups skip the UTF-8 decoding.
   */
  #str(ref: number): string {
    let s = this.#decoded.get(ref);
    if (s !== undefined) return s;
    const len = this.#strLength(ref);
    s = len === 0 ? '' : this.#buf.toString('utf8', ref + 4, ref + 4 + len);
    if (this.#decoded.size >= STRING_CACHE_MAX) this.#decoded.clear();
    this.#decoded.set(ref, s);
    return s;
  }

  /** Compare a stored string with `s` without decoding it (ASCII fast path). */
  #strEquals(ref: number, s: string): boolean {
    const len = this.#strLength(ref);
    const start = ref + 4;
    const b = this.#buf;
    if (len === s.length) {
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        if (b[start + i] !== c) return false;
      }
      if (i === len) return true;
    }
    // non-ASCII: compare the UTF-8 bytes
    const bytes = Buffer.from(s, 'utf8');
    return bytes.length === len && b.compare(bytes, 0, len, start, start + len) === 0;
  }

  #corrupt(detail: string): never {
    throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: this.seg.key, found: `a corrupt segment: ${detail}`, expected: `a valid version ${LAYOUT_VERSION}` });
  }
}

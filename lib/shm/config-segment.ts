/**
 * The writer of the config space (used by ibma): builds a complete NEW config segment from a
 * NodeBundle and the agent's settings, marks it ready, then flips the index segment to it. Old
 * segments stay until nothing but the writer could still use them (attach count 0), then
 * {@link ConfigSpaceWriter.collectGarbage} removes them.
 *
 * Keys: config segments of index key k use k+16 … k+255 round-robin, skipping taken keys
 * (lib/shm/keys.ts KEY_SLOT). Generations grow by one per publication and survive a restart of the
 * writer (they are read back from the index).
 *
 * Host load and retry-connect time of a host (same node, ip and port) are carried from the current
 * segment into the new one, so a config change does not reset load balancing.
 */
import { formatKey } from './keys.js';
import { IbpError } from '../errors.js';
import { effectiveTimeout2, type NodeBundle } from '../config/model.js';
import { attachShared, createShared, localUsers, releaseShared } from './attachments.js';
import { ConfigView } from './config-view.js';
import { IndexSegment } from './index-segment.js';
import {
  APP, CONFIG_KEY_FIRST, CONFIG_KEY_LAST, CONFIG_MAGIC, HEADER, HOST, INDEX_MAGIC, KV, LAYOUT_VERSION, NODE, NODE_KEY, READY_VALUE,
  align, hashString, kvHash, stringSize, tableSlots,
} from './layout.js';
import { destroySegment, shmidOf, statSegment, type Segment } from './sysv.js';

export interface SpaceSettings {
  ibms: { ip: string; port: number };
  /** Seconds. */
  connecting_timeout: number;
  /** Seconds. */
  retry_connect_timeval: number;
  min_compress_size: number;
}

export interface Publication {
  key: number;
  generation: number;
}

/** Largest segment the writer builds (offsets are u32). */
const MAX_SEGMENT_BYTES = 0x7fff0000;
const MAX_GENERATION = 0xffffffff;

/** Strings of a segment, each stored once. */
class StringArea {
  readonly #at = new Map<string, number>();
  readonly #list: { s: string; bytes: number }[] = [];
  size = 0;

  /** Reserve a string; returns its offset relative to the start of the area. */
  add(s: string): number {
    let off = this.#at.get(s);
    if (off === undefined) {
      const bytes = Buffer.byteLength(s, 'utf8');
      off = this.size;
      this.#at.set(s, off);
      this.#list.push({ s, bytes });
      this.size += stringSize(bytes);
    }
    return off;
  }

  write(buf: Buffer, base: number): void {
    let off = base;
    for (const { s, bytes } of this.#list) {
      buf.writeUInt32LE(bytes, off);
      if (bytes > 0 && buf.write(s, off + 4, bytes, 'utf8') !== bytes) throw new Error(`string area: ${bytes} bytes expected`);
      off += stringSize(bytes);
    }
  }
}

interface Plan {
  size: number;
  nodeSlots: number;
  appSlots: number;
  kvSlots: number;
  nodeTable: number;
  nodeRecords: number;
  hostRecords: number;
  appTable: number;
  appRecords: number;
  kvTable: number;
  kvRecords: number;
  nodeKeyRecords: number;
  strings: number;
  hostCount: number;
  kvCount: number;
}

function invalid(detail: string): never {
  throw new IbpError('IBP_ERR_SHM_INPUT', { detail });
}

/** Check the parts of a bundle the layout depends on (the schema was checked by the caller). */
function checkBundle(bundle: NodeBundle): void {
  const nodes = new Set<string>();
  for (const n of bundle.nodes) {
    if (nodes.has(n.node)) invalid(`node ${n.node} is listed twice`);
    nodes.add(n.node);
    for (const h of n.hosts) {
      if (!Number.isInteger(h.port) || h.port < 1 || h.port > 65535) invalid(`node ${n.node} has host port ${h.port}`);
    }
  }
  const apps = new Set<string>();
  for (const a of bundle.apps) {
    if (apps.has(a.app)) invalid(`app ${a.app} is listed twice`);
    apps.add(a.app);
    if (!(a.timeout >= 0) || !(a.timeout2 >= 0)) invalid(`app ${a.app} has timeout ${a.timeout}/${a.timeout2}`);
    if (!Number.isInteger(a.size) || a.size < 0 || a.size > 0xffffffff) invalid(`app ${a.app} has package size ${a.size}`);
  }
  for (const k of bundle.node_keys ?? []) {
    if (!nodes.has(k.node)) invalid(`node key ${k.kcv} is of node ${k.node}, which the bundle does not hold`);
    if (!Number.isSafeInteger(k.enable_at) || k.enable_at < 0 || !Number.isSafeInteger(k.disable_at) || k.disable_at < 0) invalid(`node key ${k.kcv} of ${k.node} has times ${k.enable_at}/${k.disable_at}`);
  }
}

/** The bundle's node keys grouped by node, in node order (the record order). */
function nodeKeysInOrder(bundle: NodeBundle): { node: number; key: NonNullable<NodeBundle['node_keys']>[number] }[] {
  const keys = bundle.node_keys ?? [];
  if (keys.length === 0) return [];
  const index = new Map(bundle.nodes.map((n, i) => [n.node, i]));
  return keys.map((key) => ({ node: index.get(key.node)!, key })).sort((a, b) => a.node - b.node);
}

function planLayout(bundle: NodeBundle, strings: StringArea, nodeKeyCount: number): Plan {
  const nodeCount = bundle.nodes.length;
  const appCount = bundle.apps.length;
  let hostCount = 0;
  let kvCount = 0;
  for (const n of bundle.nodes) {
    hostCount += n.hosts.length;
    kvCount += Object.keys(n.kvs).length;
  }
  const nodeSlots = tableSlots(nodeCount);
  const appSlots = tableSlots(appCount);
  const kvSlots = tableSlots(kvCount);
  let at = HEADER.SIZE;
  const region = (bytes: number): number => {
    const start = align(at);
    at = start + bytes;
    return start;
  };
  const plan: Plan = {
    size: 0,
    nodeSlots, appSlots, kvSlots, hostCount, kvCount,
    nodeTable: region(nodeSlots * 4),
    nodeRecords: region(nodeCount * NODE.SIZE),
    hostRecords: region(hostCount * HOST.SIZE),
    appTable: region(appSlots * 4),
    appRecords: region(appCount * APP.SIZE),
    kvTable: region(kvSlots * 4),
    kvRecords: region(kvCount * KV.SIZE),
    nodeKeyRecords: region(nodeKeyCount * NODE_KEY.SIZE),
    strings: region(strings.size),
  };
  plan.size = align(at);
  if (plan.size > MAX_SEGMENT_BYTES) {
    throw new IbpError('IBP_ERR_SHM_CAPACITY', { what: `a config of ${nodeCount} nodes, ${hostCount} hosts, ${appCount} apps, ${kvCount} kvs`, detail: `${plan.size} bytes is over ${MAX_SEGMENT_BYTES}` });
  }
  return plan;
}

/** Insert record `index` with `hash` into an open-addressed table at `table` (u32 slots). */
function insert(u32: Uint32Array, table: number, slots: number, hash: number, index: number): void {
  const mask = slots - 1;
  let slot = hash & mask;
  while (u32[(table >> 2) + slot] !== 0) slot = (slot + 1) & mask;
  u32[(table >> 2) + slot] = index + 1;
}

/** Loads and retry times of the hosts of a segment, by node/ip:port (carried into the next one). */
function hostStates(view: ConfigView | undefined): Map<string, { load: number; retryAt: number }> {
  const out = new Map<string, { load: number; retryAt: number }>();
  if (!view) return out;
  try {
    for (const n of view.nodes()) {
      for (let i = n.firstHost; i < n.firstHost + n.hostCount; i++) {
        const h = view.hostAt(i);
        out.set(`${n.name}\0${h.ip}:${h.port}`, { load: view.getHostLoad(i), retryAt: view.getRetryAt(i) });
      }
    }
  } catch {
    // a corrupt previous segment: start from zero
    out.clear();
  }
  return out;
}

/**
 * Write a complete config segment for `bundle` into a new segment at `key`. Returns undefined when
 * the key is taken. The ready word is stored last; on any failure the half-built segment is removed.
 */
export function buildConfigSegment(key: number, bundle: NodeBundle, settings: SpaceSettings, generation: number, previous?: ConfigView): Segment | undefined {
  checkBundle(bundle);
  const strings = new StringArea();
  const ref = (s: string) => strings.add(s);
  // reserve every string first: the plan needs the size of the area
  const sThisNode = ref(bundle.this_node);
  const sIbmsIp = ref(settings.ibms.ip);
  const sEpoch = ref(bundle.epoch);
  const sPackageKey = ref(bundle.package_key ?? '');
  const nodeRefs = bundle.nodes.map((n) => ({
    name: ref(n.node),
    keyExp: ref(n.key_exp ?? ''),
    hosts: n.hosts.map((h) => ref(h.ip)),
    kvs: Object.entries(n.kvs).map(([k, v]) => ({ key: k, keyRef: ref(k), valueRef: ref(v) })),
  }));
  const appRefs = bundle.apps.map((a) => ({ code: ref(a.app), desc: ref(a.desc), bin: ref(a.bin), server: ref(a.server_node ?? ''), sha: ref(a.sha256), manifest: ref(a.manifest ?? ''), signature: ref(a.signature ?? ''), next: ref(a.sha256_next ?? '') }));
  const nodeKeys = nodeKeysInOrder(bundle).map(({ node, key }) => ({ node, key, kcv: ref(key.kcv), sign: ref(key.sign_public), agree: ref(key.agree_public) }));
  const plan = planLayout(bundle, strings, nodeKeys.length);

  let seg: Segment | undefined;
  try {
    seg = createShared(key, plan.size);
  } catch (e) {
    if (e instanceof IbpError) throw e;
    // shm-typed-array throws plain errors (EINVAL over SHMMAX, ENOSPC/ENOMEM over SHMALL/SHMMNI)
    throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: `shmget(${formatKey(key)}, ${plan.size} bytes)`, detail: `${(e as Error).message}; check kernel.shmmax/shmall/shmmni` }, { cause: e });
  }
  if (!seg) return undefined;
  try {
    const buf = seg.buf;
    buf.fill(0, 0, plan.size);
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset, plan.size >>> 2);
    const i64 = new BigInt64Array(buf.buffer, buf.byteOffset, plan.size >>> 3);
    const S = (off: number) => plan.strings + off;
    const carried = hostStates(previous);

    buf.writeUInt32LE(CONFIG_MAGIC, HEADER.MAGIC);
    buf.writeUInt32LE(LAYOUT_VERSION, HEADER.VERSION);
    u32[HEADER.USED_SIZE >> 2] = plan.size;
    u32[HEADER.GENERATION >> 2] = generation;
    u32[HEADER.MIN_COMPRESS_SIZE >> 2] = Math.max(0, Math.min(0xffffffff, Math.trunc(settings.min_compress_size)));
    buf.writeDoubleLE(Date.now(), HEADER.BUILD_TIME);
    buf.writeDoubleLE(settings.connecting_timeout, HEADER.CONNECTING_TIMEOUT);
    buf.writeDoubleLE(settings.retry_connect_timeval, HEADER.RETRY_CONNECT_TIMEVAL);
    buf.writeDoubleLE(bundle.version, HEADER.BUNDLE_VERSION);
    u32[HEADER.THIS_NODE >> 2] = S(sThisNode);
    u32[HEADER.IBMS_IP >> 2] = S(sIbmsIp);
    u32[HEADER.IBMS_PORT >> 2] = settings.ibms.port;
    u32[HEADER.EPOCH >> 2] = S(sEpoch);
    u32[HEADER.NODE_COUNT >> 2] = bundle.nodes.length;
    u32[HEADER.HOST_COUNT >> 2] = plan.hostCount;
    u32[HEADER.APP_COUNT >> 2] = bundle.apps.length;
    u32[HEADER.KV_COUNT >> 2] = plan.kvCount;
    u32[HEADER.NODE_SLOTS >> 2] = plan.nodeSlots;
    u32[HEADER.APP_SLOTS >> 2] = plan.appSlots;
    u32[HEADER.KV_SLOTS >> 2] = plan.kvSlots;
    u32[HEADER.NODE_TABLE >> 2] = plan.nodeTable;
    u32[HEADER.NODE_RECORDS >> 2] = plan.nodeRecords;
    u32[HEADER.HOST_RECORDS >> 2] = plan.hostRecords;
    u32[HEADER.APP_TABLE >> 2] = plan.appTable;
    u32[HEADER.APP_RECORDS >> 2] = plan.appRecords;
    u32[HEADER.KV_TABLE >> 2] = plan.kvTable;
    u32[HEADER.KV_RECORDS >> 2] = plan.kvRecords;
    u32[HEADER.STRINGS >> 2] = plan.strings;
    u32[HEADER.STRINGS_SIZE >> 2] = strings.size;
    buf.writeInt32LE(process.pid, HEADER.WRITER_PID);
    u32[HEADER.PACKAGE_KEY >> 2] = S(sPackageKey);
    u32[HEADER.NODE_KEY_COUNT >> 2] = nodeKeys.length;
    u32[HEADER.NODE_KEY_RECORDS >> 2] = plan.nodeKeyRecords;

    let host = 0;
    let kv = 0;
    bundle.nodes.forEach((n, i) => {
      const r = nodeRefs[i]!;
      const w = (plan.nodeRecords + i * NODE.SIZE) >> 2;
      const hash = hashString(n.node);
      u32[w + (NODE.NAME >> 2)] = S(r.name);
      u32[w + (NODE.HASH >> 2)] = hash;
      u32[w + (NODE.INVALID >> 2)] = n.invalid ? 1 : 0;
      u32[w + (NODE.KEY_EXP >> 2)] = S(r.keyExp);
      u32[w + (NODE.FIRST_HOST >> 2)] = host;
      u32[w + (NODE.HOST_COUNT >> 2)] = n.hosts.length;
      u32[w + (NODE.FIRST_KV >> 2)] = kv;
      u32[w + (NODE.KV_COUNT >> 2)] = r.kvs.length;
      insert(u32, plan.nodeTable, plan.nodeSlots, hash, i);
      n.hosts.forEach((h, j) => {
        const off = plan.hostRecords + host * HOST.SIZE;
        const hw = off >> 2;
        u32[hw + (HOST.NODE >> 2)] = i;
        u32[hw + (HOST.IP >> 2)] = S(r.hosts[j]!);
        u32[hw + (HOST.PORT >> 2)] = h.port;
        u32[hw + (HOST.INVALID >> 2)] = h.invalid ? 1 : 0;
        const was = carried.get(`${n.node}\0${h.ip}:${h.port}`);
        if (was) {
          u32[hw + (HOST.LOAD >> 2)] = was.load >>> 0;
          i64[(off + HOST.RETRY_AT) >> 3] = BigInt(was.retryAt);
        }
        host++;
      });
      r.kvs.forEach(({ key, keyRef, valueRef }) => {
        const kw = (plan.kvRecords + kv * KV.SIZE) >> 2;
        const h = kvHash(i, hashString(key));
        u32[kw + (KV.NODE >> 2)] = i;
        u32[kw + (KV.KEY >> 2)] = S(keyRef);
        u32[kw + (KV.VALUE >> 2)] = S(valueRef);
        u32[kw + (KV.HASH >> 2)] = h;
        insert(u32, plan.kvTable, plan.kvSlots, h, kv);
        kv++;
      });
    });

    bundle.apps.forEach((a, i) => {
      const r = appRefs[i]!;
      const off = plan.appRecords + i * APP.SIZE;
      const w = off >> 2;
      const hash = hashString(a.app);
      u32[w + (APP.CODE >> 2)] = S(r.code);
      u32[w + (APP.HASH >> 2)] = hash;
      u32[w + (APP.DESC >> 2)] = S(r.desc);
      u32[w + (APP.BIN >> 2)] = S(r.bin);
      buf.writeDoubleLE(a.timeout, off + APP.TIMEOUT);
      buf.writeDoubleLE(effectiveTimeout2(a), off + APP.TIMEOUT2);
      u32[w + (APP.SERVER_NODE >> 2)] = S(r.server);
      u32[w + (APP.INVALID >> 2)] = a.invalid ? 1 : 0;
      u32[w + (APP.SHA256 >> 2)] = S(r.sha);
      u32[w + (APP.PACKAGE_SIZE >> 2)] = a.size;
      u32[w + (APP.MANIFEST >> 2)] = S(r.manifest);
      u32[w + (APP.SIGNATURE >> 2)] = S(r.signature);
      u32[w + (APP.SHA256_NEXT >> 2)] = S(r.next);
      insert(u32, plan.appTable, plan.appSlots, hash, i);
    });

    nodeKeys.forEach((k, i) => {
      const off = plan.nodeKeyRecords + i * NODE_KEY.SIZE;
      const w = off >> 2;
      u32[w + (NODE_KEY.NODE >> 2)] = k.node;
      u32[w + (NODE_KEY.KCV >> 2)] = S(k.kcv);
      u32[w + (NODE_KEY.SIGN_PUBLIC >> 2)] = S(k.sign);
      u32[w + (NODE_KEY.AGREE_PUBLIC >> 2)] = S(k.agree);
      buf.writeDoubleLE(k.key.enable_at, off + NODE_KEY.ENABLE_AT);
      buf.writeDoubleLE(k.key.disable_at, off + NODE_KEY.DISABLE_AT);
    });

    strings.write(buf, plan.strings);
    // last: the segment is complete
    Atomics.store(seg.i32, HEADER.READY >> 2, READY_VALUE);
    return seg;
  } catch (e) {
    releaseShared(seg);
    destroySegment(key);
    throw e;
  }
}

/** Is there a config or index segment of IBP at this key (any version)? Attaches briefly. */
function isOurSegment(key: number): boolean {
  const seg = attachShared(key);
  if (!seg) return false;
  try {
    if (seg.buf.length < 8) return false;
    const magic = seg.buf.readUInt32LE(0);
    return magic === CONFIG_MAGIC || magic === INDEX_MAGIC;
  } finally {
    releaseShared(seg);
  }
}

function checkIndexKey(indexKey: number): void {
  if (!Number.isInteger(indexKey) || indexKey < 1 || indexKey + CONFIG_KEY_LAST > 0x7fffffff) {
    throw new IbpError('IBP_ERR_SHM_ARG', { arg: 'index key', detail: `${indexKey} must be an integer with ${indexKey} + ${CONFIG_KEY_LAST} ≤ 0x7fffffff` });
  }
}

export class ConfigSpaceWriter {
  readonly indexKey: number;
  #index: IndexSegment | undefined;
  #current: { view: ConfigView; generation: number } | undefined;
  /** Config segments not current any more, by key → shmid, oldest first. */
  readonly #old = new Map<number, number>();
  /** Where the round-robin search for the next key starts (an offset in CONFIG_KEY_FIRST..LAST). */
  #nextSlot = CONFIG_KEY_FIRST;
  /** Generation of the last publication (0 = none yet). */
  #generation = 0;

  /**
   * Create the index segment, or re-attach the one a previous writer left: its current segment is
   * adopted as current and every other IBP segment in the key block becomes collectable.
   */
  constructor(indexKey: number) {
    checkIndexKey(indexKey);
    this.indexKey = indexKey;
    this.#index = IndexSegment.openOrCreate(indexKey);
    const { key, generation } = this.#index.read();
    if (key !== 0) {
      const seg = attachShared(key);
      if (seg) {
        try {
          const view = new ConfigView(seg);
          if (view.generation !== generation) throw new Error('generation mismatch');
          this.#current = { view, generation };
          this.#nextSlot = key - indexKey + 1;
        } catch {
          releaseShared(seg);
        }
      }
    }
    this.#generation = generation;
    for (let slot = CONFIG_KEY_FIRST; slot <= CONFIG_KEY_LAST; slot++) {
      const k = indexKey + slot;
      if (k === this.#current?.view.key) continue;
      const id = shmidOf(k);
      if (id >= 0 && isOurSegment(k)) this.#old.set(k, id);
    }
  }

  /** Build a new segment from the bundle, mark it ready, then point the index at it. */
  publish(bundle: NodeBundle, settings: SpaceSettings): Publication {
    const index = this.#open();
    const generation = this.#generation + 1;
    if (generation > MAX_GENERATION) throw new IbpError('IBP_ERR_SHM_CAPACITY', { what: 'generation', detail: 'the generation counter is exhausted: restart with `ibma -a start_cleanly`' });
    const span = CONFIG_KEY_LAST - CONFIG_KEY_FIRST + 1;
    let seg: Segment | undefined;
    for (let tried = 0; tried < span && !seg; tried++) {
      const slot = CONFIG_KEY_FIRST + ((this.#nextSlot - CONFIG_KEY_FIRST + tried) % span);
      const key = this.indexKey + slot;
      if (key === this.#current?.view.key || shmidOf(key) >= 0) continue;
      seg = buildConfigSegment(key, bundle, settings, generation, this.#current?.view);
      if (seg) this.#nextSlot = slot + 1 > CONFIG_KEY_LAST ? CONFIG_KEY_FIRST : slot + 1;
    }
    if (!seg) {
      throw new IbpError('IBP_ERR_SHM_CAPACITY', { what: 'a new config segment', detail: `every key ${this.indexKey + CONFIG_KEY_FIRST}…${this.indexKey + CONFIG_KEY_LAST} is taken (old segments still attached by readers?)` });
    }
    const view = new ConfigView(seg);
    index.write(seg.key, generation);
    this.#generation = generation;
    const before = this.#current;
    this.#current = { view, generation };
    if (before) {
      this.#old.set(before.view.key, before.view.seg.shmid);
      releaseShared(before.view.seg);
    }
    return { key: seg.key, generation };
  }

  current(): Publication | undefined {
    return this.#current ? { key: this.#current.view.key, generation: this.#current.generation } : undefined;
  }

  /** Keys of old segments that still exist (not current, not yet removed). */
  oldSegments(): number[] {
    const out: number[] = [];
    for (const [key, id] of this.#old) {
      if (shmidOf(key) === id) out.push(key);
      else this.#old.delete(key);
    }
    return out;
  }

  /** Remove the old segments nobody is attached to any more; returns the removed keys. */
  collectGarbage(): number[] {
    const removed: number[] = [];
    for (const [key, id] of this.#old) {
      if (shmidOf(key) !== id) {
        this.#old.delete(key);
        continue;
      }
      if (localUsers(id) > 0) continue; // a reader in this very process still uses it
      const st = statSegment(id);
      if (!st) {
        this.#old.delete(key);
        continue;
      }
      if (st.nattch === 0 && destroySegment(key)) {
        this.#old.delete(key);
        removed.push(key);
      }
    }
    return removed;
  }

  /** stop_cleanly: remove every segment this writer made or adopted, and the index; then close. */
  removeAll(): void {
    const cur = this.#current;
    this.#current = undefined;
    if (cur) {
      releaseShared(cur.view.seg);
      destroySegment(cur.view.key);
    }
    for (const [key, id] of this.#old) if (shmidOf(key) === id) destroySegment(key);
    this.#old.clear();
    if (this.#index) {
      const idx = this.#index;
      this.#index = undefined;
      if (shmidOf(idx.key) === idx.shmid) destroySegment(idx.key);
      idx.closeForGood();
    }
  }

  /** Detach only: the segments stay for the readers (`ibma -a stop`). */
  close(): void {
    if (this.#current) {
      releaseShared(this.#current.view.seg);
      this.#current = undefined;
    }
    this.#index?.closeForGood();
    this.#index = undefined;
  }

  /**
   * `ibma -a start_cleanly`: remove the index segment at `indexKey` and every IBP config segment of
   * its key block, whoever made them. Returns the removed keys.
   */
  static removeLeftovers(indexKey: number): number[] {
    checkIndexKey(indexKey);
    const removed: number[] = [];
    for (const slot of [0, ...Array.from({ length: CONFIG_KEY_LAST - CONFIG_KEY_FIRST + 1 }, (_, i) => CONFIG_KEY_FIRST + i)]) {
      const k = indexKey + slot;
      if (shmidOf(k) >= 0 && isOurSegment(k) && destroySegment(k)) removed.push(k);
    }
    return removed;
  }

  #open(): IndexSegment {
    if (!this.#index) throw new IbpError('IBP_ERR_SHM_ARG', { arg: 'writer', detail: 'it is closed (create a new ConfigSpaceWriter)' });
    return this.#index;
  }
}

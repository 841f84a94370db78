/**
 * The replay cache of one ibas: every signed hello (pre-request nonce + client KCV) the server
 * accepted within `security.replay_window`, shared by all workers (and both generations during a
 * USR2 handover) in one SysV segment (key homeKeyBase(home) + KEY_SLOT.REPLAY_CACHE). Created by
 * the manager at start when the server can sign at all ({@link replayCacheNeeded}; a USR2 new
 * generation attaches it, or creates it when it is the first that signs), attached by every
 * worker, removed at stop. A whole signed exchange replayed to another worker of the pool is refused with
 * IBP_ERR_TX_REPLAY (lib/protocol/tx-security.ts {@link NonceMemory}).
 *
 * Layout (little-endian; every constant below is in {@link REPLAY_CACHE}; docs/ARCHITECTURE.md §7.4.2):
 *
 *   header (64 bytes)  @0 u32 magic 0x49425250  @4 u32 version 1
 *                      @8 u32 entry capacity (a power of two)  @12 u32 entry size (16)
 *                      @16 u32 probe limit
 *   entry i at 64 + i × 16:
 *     @0 i64 state: 0 never used (ends every probe), -1 being written, else the expiry (ms since
 *        the epoch) of the hello remembered here
 *     @8 i64 fingerprint: the first 8 bytes of sha256(nonce ‖ client KCV), never 0
 *
 * An open-addressed table with linear probing and no lock: an entry is claimed by a
 * compare-and-swap of its state (0 or an expired time → -1), then the fingerprint and the expiry
 * are stored. A probe visits at most PROBE entries from the fingerprint's home and stops at the
 * first never-used one: entries never go back to 0, so no chain is ever cut. After storing its
 * entry a worker scans the chain again; a live entry of the same fingerprint elsewhere (two
 * workers inserting one hello at the same instant) refuses the hello (both may refuse: fail
 * closed). No free or expired entry within the probe limit: the table is full and the hello is
 * refused (IBP_ERR_TX_REPLAY_CACHE_FULL) rather than forgotten. A worker killed between the claim
 * and the expiry store leaves one entry at -1 (skipped by probes, never reused).
 */
import crypto from 'node:crypto';
import { IbpError } from '../lib/errors.js';
import { attachOrCreate, attachSegmentAs, createFreshSegment, destroySegment, Segment, SegmentTable } from '../lib/shm/sysv.js';
import { policyOf, type NonceMemory } from '../lib/protocol/tx-security.js';
import type { IbasConf } from '../lib/config/ibas-conf.js';

export const REPLAY_CACHE = {
  MAGIC: 0x49425250,
  VERSION: 1,
  HEADER: 64,
  ENTRY: 16,
  /** Entries visited per lookup at most (bounded time; also how far an entry may sit from its home). */
  PROBE: 64,
  /** Default of ibas.conf security.replay_cache_size (entries; 1 MiB). */
  DEFAULT_SIZE: 1_048_576,
  /** Header field offsets. */
  H: { MAGIC: 0, VERSION: 4, CAPACITY: 8, ENTRY: 12, PROBE: 16 },
  /** Entry field offsets. */
  E: { STATE: 0, FINGERPRINT: 8 },
} as const;

const { H, E } = REPLAY_CACHE;
const WRITING = -1n;
/** Spins while another process writes an entry (three stores: a few µs). */
const SPIN = 100_000;

/** Entries of a table for `size` (rounded up to a power of two, at least PROBE). */
export function replayCapacityOf(size: number): number {
  let n = REPLAY_CACHE.PROBE;
  while (n < size) n *= 2;
  return n;
}

/**
 * Whether an ibas with this `security` section can accept a signed hello at all (sign_flag or
 * encrypt_flag not none), and so needs the replay cache. A server that signs nothing never
 * remembers a nonce: it makes no segment (the 16 MiB of the default size stay unreserved).
 */
export function replayCacheNeeded(security: IbasConf['security']): boolean {
  return policyOf(security).sign !== 'none';
}

/** The fingerprint of a hello: 8 bytes of sha256(nonce ‖ client KCV) as a non-zero i64. */
export function helloFingerprint(nonce: Buffer, clientKcv: string): bigint {
  const fp = crypto.createHash('sha256').update(nonce).update('\0').update(clientKcv).digest().readBigInt64LE(0);
  return fp === 0n ? 1n : fp;
}

export class ReplayCache extends SegmentTable implements NonceMemory {
  readonly capacity: number;
  readonly #i64: BigInt64Array;
  readonly #probe: number;

  private constructor(seg: Segment) {
    super(seg);
    const b = seg.buf;
    if (b.length < REPLAY_CACHE.HEADER || b.readUInt32LE(H.MAGIC) !== REPLAY_CACHE.MAGIC || b.readUInt32LE(H.VERSION) !== REPLAY_CACHE.VERSION || b.readUInt32LE(H.ENTRY) !== REPLAY_CACHE.ENTRY) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: 'no replay-cache header of this layout', expected: `replay cache v${REPLAY_CACHE.VERSION}` });
    }
    this.capacity = b.readUInt32LE(H.CAPACITY);
    this.#probe = Math.min(b.readUInt32LE(H.PROBE), this.capacity);
    if (this.capacity === 0 || (this.capacity & (this.capacity - 1)) !== 0 || REPLAY_CACHE.HEADER + this.capacity * REPLAY_CACHE.ENTRY > b.length) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `${this.capacity} entries in ${b.length} bytes`, expected: 'a power-of-two entry count that fits' });
    }
    this.#i64 = new BigInt64Array(b.buffer, b.byteOffset, b.length >> 3);
  }

  /** A fresh segment of `size` entries (rounded up to a power of two); a stale one with the key is removed first. */
  static create(key: number, size: number = REPLAY_CACHE.DEFAULT_SIZE): ReplayCache {
    const capacity = replayCapacityOf(size);
    const seg = createFreshSegment(key, REPLAY_CACHE.HEADER + capacity * REPLAY_CACHE.ENTRY, 'replay cache');
    seg.buf.writeUInt32LE(REPLAY_CACHE.VERSION, H.VERSION);
    seg.buf.writeUInt32LE(capacity, H.CAPACITY);
    seg.buf.writeUInt32LE(REPLAY_CACHE.ENTRY, H.ENTRY);
    seg.buf.writeUInt32LE(REPLAY_CACHE.PROBE, H.PROBE);
    Atomics.store(seg.i32, H.MAGIC >> 2, REPLAY_CACHE.MAGIC | 0); // last: readers see a complete header or none
    return new ReplayCache(seg);
  }

  /** Attach an existing segment; undefined when there is none. Throws on another layout. */
  static attach(key: number): ReplayCache | undefined {
    return attachSegmentAs(key, (seg) => new ReplayCache(seg));
  }

  /** Remove a segment with the key, if any (a server that signs nothing keeps none, not even a stale one). */
  static remove(key: number): void {
    destroySegment(key);
  }

  /**
   * Attach when it exists (a USR2 new generation shares the nonces the old one saw, whatever its
   * size: a new size takes a full restart), else create.
   */
  static open(key: number, size: number = REPLAY_CACHE.DEFAULT_SIZE): ReplayCache {
    return attachOrCreate(() => ReplayCache.attach(key), () => ReplayCache.create(key, size));
  }



  #state(i: number): number {
    return (REPLAY_CACHE.HEADER + i * REPLAY_CACHE.ENTRY + E.STATE) >> 3;
  }

  /** The state of entry i once no one is writing it (WRITING when a writer never finished). */
  #settled(i: number): bigint {
    let st = Atomics.load(this.#i64, this.#state(i));
    for (let spin = 0; st === WRITING && spin < SPIN; spin++) st = Atomics.load(this.#i64, this.#state(i));
    return st;
  }

  /**
   * Scan the chain of `fp`: the index of a live entry holding it (other than `except`), and the
   * first entry free to claim (never used or expired).
   */
  #scan(fp: bigint, now: bigint, except: number): { live: number; free: number } {
    const mask = this.capacity - 1;
    const home = Number(BigInt.asUintN(32, fp)) & mask;
    let free = -1;
    for (let n = 0; n < this.#probe; n++) {
      const i = (home + n) & mask;
      const st = this.#settled(i);
      if (st === 0n) return { live: -1, free: free < 0 ? i : free };
      if (st === WRITING) continue;
      if (st <= now) {
        if (free < 0) free = i;
        continue;
      }
      if (i !== except && Atomics.load(this.#i64, this.#state(i) + 1) === fp) return { live: i, free };
    }
    return { live: -1, free };
  }

  /**
   * Remember a hello until `expiresAt` (ms since the epoch). False: it is remembered already (a
   * replay). Throws IBP_ERR_TX_REPLAY_CACHE_FULL when no entry within the probe limit is free.
   */
  remember(nonce: Buffer, clientKcv: string, expiresAt: number, now: number): boolean {
    const fp = helloFingerprint(nonce, clientKcv);
    const nowN = BigInt(Math.floor(now));
    const exp = BigInt(Math.max(Math.ceil(expiresAt), Math.floor(now) + 1));
    for (let attempt = 0; attempt < this.#probe; attempt++) {
      const { live, free } = this.#scan(fp, nowN, -1);
      if (live >= 0) return false;
      if (free < 0) {
        throw new IbpError('IBP_ERR_TX_REPLAY_CACHE_FULL', { capacity: this.capacity, window: 'security.replay_window' });
      }
      const idx = this.#state(free);
      const seen = Atomics.load(this.#i64, idx);
      if (seen === WRITING || (seen !== 0n && seen > nowN)) continue; // taken meanwhile: scan again
      if (Atomics.compareExchange(this.#i64, idx, seen, WRITING) !== seen) continue;
      Atomics.store(this.#i64, idx + 1, fp);
      Atomics.store(this.#i64, idx, exp);
      // the same hello stored by another worker at the same instant: refuse (fail closed)
      return this.#scan(fp, nowN, free).live < 0;
    }
    throw new IbpError('IBP_ERR_TX_REPLAY_CACHE_FULL', { capacity: this.capacity, window: 'security.replay_window' });
  }

  /** Live entries (for tests and `-s status`-style reports): a full pass over the table. */
  liveCount(now = Date.now()): number {
    let n = 0;
    const nowN = BigInt(Math.floor(now));
    for (let i = 0; i < this.capacity; i++) if (Atomics.load(this.#i64, this.#state(i)) > nowN) n++;
    return n;
  }
}

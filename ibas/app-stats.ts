/**
 * Per-app transaction counters and latency histograms of one ibas, in their own SysV segment
 * (key homeKeyBase(home) + KEY_SLOT.APP_STATS), created by the manager and written by every
 * worker through the transaction log (ibas/tx-log.ts `record`), read by the manager's /metrics
 * (ibas/metrics.ts). Counters only ever grow (Atomics.add on 64-bit words), so no lock and no
 * seqlock: a reader may see one transaction counted in `count` and not yet in its bucket, which
 * the next scrape corrects.
 *
 * Layout (little-endian; every constant below is in {@link APP_STATS}; docs/ARCHITECTURE.md §2.1):
 *
 *   header (64 bytes)  @0 u32 magic 0x49424153 ('IBAS' stats)  @4 u32 version 1
 *                      @8 u32 record capacity                   @12 u32 record size (320)
 *                      @16 u32 histogram buckets (13)           @20 u32 rc slots per record (8)
 *   record i at 64 + i × 320:
 *     @0   i32 state (0 free, 1 being named, 2 named)
 *     @4   u8 name length, @5 name (≤ 64 UTF-8 bytes)
 *     @72  i64 transactions      @80 i64 sum of latency (µs)
 *     @88  i64 × 13 histogram bucket counts (not cumulative; bounds in {@link LATENCY_BUCKETS_US}, last = +Inf)
 *     @192 8 × { i32 rc + 1 (0 = free), i32 pad, i64 count }: transactions by wire result code;
 *          a 9th distinct rc is counted in the last slot under rc -1 ("other")
 *
 * Two workers naming the same app at once may each take a record: readers add records by name.
 * When the table is full, further apps are counted under the name `(other)` in the last record.
 */
import { IbpError } from '../lib/errors.js';
import { attachOrCreate, attachSegmentAs, createFreshSegment, Segment, SegmentTable } from '../lib/shm/sysv.js';

/** Upper bounds of the latency buckets, µs (the last bucket, +Inf, is implicit). */
export const LATENCY_BUCKETS_US = [1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000] as const;

export const APP_STATS = {
  MAGIC: 0x49424153,
  VERSION: 1,
  HEADER: 64,
  RECORD: 320,
  CAPACITY: 128,
  NAME_MAX: 64,
  BUCKETS: LATENCY_BUCKETS_US.length + 1,
  RC_SLOTS: 8,
  /** Record field offsets. */
  R: { STATE: 0, NAME_LEN: 4, NAME: 5, COUNT: 72, SUM_US: 80, HIST: 88, RC: 192 },
  /** Header field offsets. */
  H: { MAGIC: 0, VERSION: 4, CAPACITY: 8, RECORD: 12, BUCKETS: 16, RC_SLOTS: 20 },
} as const;

const { R, H } = APP_STATS;
const OTHER_APP = '(other)';
/** rc tag of the last slot: codes beyond the record's slots. */
const OTHER_TAG = 0x7fffffff;

export interface AppStatsView {
  app: string;
  count: number;
  sumUs: number;
  /** Per bucket (not cumulative), APP_STATS.BUCKETS entries. */
  buckets: number[];
  /** Wire result code → transactions. -1 = codes beyond the record's rc slots. */
  byRc: Map<number, number>;
}

export class AppStats extends SegmentTable {
  readonly capacity: number;
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #buf: Buffer;
  /** This process's app → record index. */
  readonly #index = new Map<string, number>();

  private constructor(seg: Segment) {
    super(seg);
    this.#buf = seg.buf;
    this.#i32 = seg.i32;
    this.#i64 = new BigInt64Array(seg.buf.buffer, seg.buf.byteOffset, seg.buf.length >> 3);
    const b = this.#buf;
    if (b.length < APP_STATS.HEADER || b.readUInt32LE(H.MAGIC) !== APP_STATS.MAGIC || b.readUInt32LE(H.VERSION) !== APP_STATS.VERSION
      || b.readUInt32LE(H.RECORD) !== APP_STATS.RECORD || b.readUInt32LE(H.BUCKETS) !== APP_STATS.BUCKETS || b.readUInt32LE(H.RC_SLOTS) !== APP_STATS.RC_SLOTS) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: 'no app-stats header of this layout', expected: `app stats v${APP_STATS.VERSION}` });
    }
    this.capacity = b.readUInt32LE(H.CAPACITY);
    if (APP_STATS.HEADER + this.capacity * APP_STATS.RECORD > b.length) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `${this.capacity} records in ${b.length} bytes`, expected: 'a consistent record count' });
    }
  }

  /** A fresh segment (a stale one with the key is removed first). */
  static create(key: number, capacity: number = APP_STATS.CAPACITY): AppStats {
    const seg = createFreshSegment(key, APP_STATS.HEADER + capacity * APP_STATS.RECORD, 'app stats');
    seg.buf.writeUInt32LE(APP_STATS.VERSION, H.VERSION);
    seg.buf.writeUInt32LE(capacity, H.CAPACITY);
    seg.buf.writeUInt32LE(APP_STATS.RECORD, H.RECORD);
    seg.buf.writeUInt32LE(APP_STATS.BUCKETS, H.BUCKETS);
    seg.buf.writeUInt32LE(APP_STATS.RC_SLOTS, H.RC_SLOTS);
    Atomics.store(seg.i32, H.MAGIC >> 2, APP_STATS.MAGIC | 0); // last: readers see a complete header or none
    return new AppStats(seg);
  }

  /** Attach an existing segment; undefined when there is none. */
  static attach(key: number): AppStats | undefined {
    return attachSegmentAs(key, (seg) => new AppStats(seg));
  }

  /** Attach when it exists (a USR2 new generation keeps the counters), else create. */
  static open(key: number): AppStats {
    return attachOrCreate(() => AppStats.attach(key), () => AppStats.create(key));
  }



  #base(i: number): number {
    return APP_STATS.HEADER + i * APP_STATS.RECORD;
  }

  #nameOf(i: number): string {
    const base = this.#base(i);
    const n = Math.min(this.#buf[base + R.NAME_LEN]!, APP_STATS.NAME_MAX);
    return this.#buf.toString('utf8', base + R.NAME, base + R.NAME + n);
  }

  /** The record of `app`, naming a free one when it has none yet. */
  #recordOf(app: string): number {
    const cached = this.#index.get(app);
    if (cached !== undefined) return cached;
    const name = Buffer.from(app, 'utf8').subarray(0, APP_STATS.NAME_MAX).toString('utf8');
    for (let i = 0; i < this.capacity; i++) {
      const stateIdx = this.#base(i) >> 2;
      let st = Atomics.load(this.#i32, stateIdx);
      if (st === 0) {
        if (i === this.capacity - 1 && name !== OTHER_APP) return this.#recordOf(OTHER_APP);
        if (Atomics.compareExchange(this.#i32, stateIdx, 0, 1) === 0) {
          const base = this.#base(i);
          this.#buf[base + R.NAME_LEN] = this.#buf.write(name, base + R.NAME, APP_STATS.NAME_MAX, 'utf8');
          Atomics.store(this.#i32, stateIdx, 2);
          this.#index.set(app, i);
          return i;
        }
        st = Atomics.load(this.#i32, stateIdx);
      }
      // a record being named by another process: wait for its name (a few µs; bounded)
      for (let spin = 0; st === 1 && spin < 100_000; spin++) st = Atomics.load(this.#i32, stateIdx);
      if (st === 2 && this.#nameOf(i) === name) {
        this.#index.set(app, i);
        return i;
      }
    }
    // full (cannot happen: the last record is kept for OTHER_APP) — count under the last record
    return this.capacity - 1;
  }

  /** Count one transaction of `app` with wire result `rc` and server-side latency `us`. */
  add(app: string, rc: number, us: number): void {
    if (this.capacity === 0) return;
    const i = this.#recordOf(app);
    const base = this.#base(i);
    const w = (off: number): number => (base + off) >> 3;
    const lat = Math.max(0, Math.round(us));
    Atomics.add(this.#i64, w(R.COUNT), 1n);
    Atomics.add(this.#i64, w(R.SUM_US), BigInt(lat));
    let b = LATENCY_BUCKETS_US.findIndex((bound) => lat <= bound);
    if (b < 0) b = LATENCY_BUCKETS_US.length;
    Atomics.add(this.#i64, w(R.HIST) + b, 1n);
    // rc slot: find its tag, or claim a free one; the last slot takes every further code as "other"
    const own = rc >= 0 && rc < OTHER_TAG - 1 ? rc + 1 : OTHER_TAG;
    for (let s = 0; s < APP_STATS.RC_SLOTS; s++) {
      const tagIdx = (base + R.RC + s * 16) >> 2;
      const last = s === APP_STATS.RC_SLOTS - 1;
      const want = last ? OTHER_TAG : own;
      let tag = Atomics.load(this.#i32, tagIdx);
      if (tag === 0) {
        const prev = Atomics.compareExchange(this.#i32, tagIdx, 0, want);
        tag = prev === 0 ? want : prev;
      }
      if (tag === own || last) {
        Atomics.add(this.#i64, (base + R.RC + s * 16 + 8) >> 3, 1n);
        return;
      }
    }
  }

  /** Every named record, merged by name. */
  read(): AppStatsView[] {
    const byName = new Map<string, AppStatsView>();
    for (let i = 0; i < this.capacity; i++) {
      const base = this.#base(i);
      if (Atomics.load(this.#i32, base >> 2) !== 2) continue;
      const app = this.#nameOf(i);
      let v = byName.get(app);
      if (!v) {
        v = { app, count: 0, sumUs: 0, buckets: new Array<number>(APP_STATS.BUCKETS).fill(0), byRc: new Map() };
        byName.set(app, v);
      }
      const w = (off: number): number => (base + off) >> 3;
      v.count += Number(Atomics.load(this.#i64, w(R.COUNT)));
      v.sumUs += Number(Atomics.load(this.#i64, w(R.SUM_US)));
      for (let b = 0; b < APP_STATS.BUCKETS; b++) v.buckets[b]! += Number(Atomics.load(this.#i64, w(R.HIST) + b));
      for (let s = 0; s < APP_STATS.RC_SLOTS; s++) {
        const tag = Atomics.load(this.#i32, (base + R.RC + s * 16) >> 2);
        if (tag === 0) continue;
        const rc = tag === OTHER_TAG ? -1 : tag - 1;
        const n = Number(Atomics.load(this.#i64, (base + R.RC + s * 16 + 8) >> 3));
        v.byRc.set(rc, (v.byRc.get(rc) ?? 0) + n);
      }
    }
    return [...byName.values()];
  }
}

/**
 * The scoreboard: one SysV segment per ibas (key homeKeyBase(home) + KEY_SLOT.SCOREBOARD) with a
 * header written by the manager and one slot per worker, written by that worker only (the manager
 * writes a slot only while no live process owns it: before spawning into it and after reaping).
 * `ibas -s bbstat/bbdetail`, the manager's timeout scan and every answer's load read it.
 *
 * No pointers in shm: offsets only. Every slot starts with a sequence number (seqlock): a writer
 * makes it odd, writes, makes it even. A reader retries while it is odd or changed under it, so it
 * never returns a torn slot; a writer killed mid-write leaves it odd, and the manager evens it when
 * it reaps the slot.
 *
 * Header (64 bytes, little-endian):
 *
 *   @0  i32 magic 0x49425342 ("IBSB")     @4  i32 layout version (2)
 *   @8  i32 slot count                     @12 i32 slot size (128)
 *   @16 i32 manager pid                    @20 i32 generation of the manager
 *   @24 i32 mode (0 FORK, 1 STATIC, 2 DYNAMIC, 3 FOREGROUND)
 *   @28 i32 header sequence (seqlock of the counters below)
 *   @32 f64 manager start (ms epoch)       @40 f64 transactions of exited workers
 *   @48 f64 errors of exited workers       @56 i32 workers spawned   @60 i32 abnormal exits
 *
 * Slot i at 64 + i × 128:
 *
 *   @0  i32 sequence   @4  i32 pid   @8  i32 generation   @12 i32 state (WORKER_STATES index)
 *   @16 i32 transactions served        @20 i32 failed transactions
 *   @24 i32 connections served         @28 i32 timeout2 of the running transaction (ms)
 *   @32 f64 process start (ms epoch)   @40 f64 transaction start (ms epoch, 0 = none)
 *   @48 f64 state since (ms epoch)     @56 u8 app length, @57 app (64 bytes)
 *   @121 u8 transport of the connection (0 none, 1 binary, 2 http; ibas/last-answer.ts)
 *   @122 u8 1 = answers of the running transaction are held unsent in the worker (the pre-answer)
 *   @123 u8 workers spawned into this slot (saturates at 255; kept across release: restarts = spawns − 1)
 *   @124 i32 the connection's fd in the worker (for tiers 2/3)
 *
 * Suspended apps (the crash-loop brake, ibas/suspensions.ts) at 64 + slots × 128: SB_SUSPEND_MAX
 * entries of 192 bytes, written by the manager (and `ibas -a resume_app`), read lock-free by every
 * worker before it resolves an app:
 *
 *   @0  i32 sequence (odd while written)   @4  i32 state (0 free, 1 being written, 2 suspended)
 *   @8  i32 crashes counted                @12 i32 window (s)
 *   @16 f64 suspended since (ms epoch)     @24 f64 package size   @32 f64 package mtime (ms)
 *   @40 f64 package inode                  @48 u8 app length, @49 app (64 bytes)
 *   @113 u8 bin length, @114 bin (64 bytes) @178 reserved to 192
 *
 * An entry changes state by compare-and-swap on its state (free → being written → suspended,
 * suspended → being written → free), so the manager and the CLI never write one together.
 */
import { IbpError } from '../lib/errors.js';
import { attachSegmentAs, createFreshSegment, Segment, SegmentTable } from '../lib/shm/sysv.js';

export const SB_MAGIC = 0x49425342;
export const SB_VERSION = 2;
export const SB_HEADER = 64;
export const SB_SLOT = 128;
/** Entries of the suspended-apps table, and the size of one. */
export const SB_SUSPEND_MAX = 32;
export const SB_SUSPEND_ENTRY = 192;
const APP_MAX = 64;
/** Suspension entry field offsets. */
const S = { SEQ: 0, STATE: 4, CRASHES: 8, WINDOW: 12, SINCE: 16, SIZE: 24, MTIME: 32, INO: 40, APP_LEN: 48, APP: 49, BIN_LEN: 113, BIN: 114 } as const;
const SUSP_FREE = 0;
const SUSP_BUSY = 1;
const SUSP_ON = 2;

/** One suspended app (the package identity is the one recorded when it was suspended). */
export interface Suspension {
  app: string;
  bin: string;
  crashes: number;
  windowS: number;
  since: number;
  size: number;
  mtimeMs: number;
  ino: number;
}

/** Bytes of a scoreboard with `slots` slots. */
export function scoreboardBytes(slots: number): number {
  return SB_HEADER + slots * SB_SLOT + SB_SUSPEND_MAX * SB_SUSPEND_ENTRY;
}

/** Worker states, after IBP (listening / working / idle) and httpd's one-character view. */
export const WORKER_STATES = ['DEAD', 'STARTING', 'IDLE', 'LISTEN', 'WORKING', 'KEEPALIVE', 'GRACEFUL', 'READING'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];
export const STATE_CHAR: Record<WorkerState, string> = {
  DEAD: '.', STARTING: 'S', IDLE: '_', LISTEN: 'L', WORKING: 'W', KEEPALIVE: 'K', GRACEFUL: 'G', READING: 'R',
};
/** States of a worker held by a connection without running a transaction (waiting for or reading a request). */
export const HELD_STATES: ReadonlySet<WorkerState> = new Set(['READING', 'KEEPALIVE']);
const STATE_NUM = Object.fromEntries(WORKER_STATES.map((s, i) => [s, i])) as Record<WorkerState, number>;

export const SB_MODES = ['FORK', 'STATIC_WORKERPOOL', 'DYNAMIC_WORKERPOOL', 'FOREGROUND'] as const;
export type SbMode = (typeof SB_MODES)[number];

/** Slot field offsets (bytes, from the slot's start). */
const F = { SEQ: 0, PID: 4, GEN: 8, STATE: 12, COUNT: 16, ERRORS: 20, CONNS: 24, TIMEOUT2: 28, STARTED: 32, TX_START: 40, SINCE: 48, APP_LEN: 56, APP: 57, TRANSPORT: 121, HELD: 122, SPAWNS: 123, CONN_FD: 124 } as const;
/** Header field offsets. */
const H = { MAGIC: 0, VERSION: 4, SLOTS: 8, SLOT_SIZE: 12, PID: 16, GEN: 20, MODE: 24, SEQ: 28, STARTED: 32, RETIRED_TX: 40, RETIRED_ERR: 48, SPAWNED: 56, DEATHS: 60 } as const;

export interface SlotView {
  index: number;
  pid: number;
  generation: number;
  state: WorkerState;
  count: number;
  errors: number;
  connections: number;
  timeout2Ms: number;
  startedAt: number;
  txStartAt: number;
  since: number;
  app: string;
  /** The connection being served: its protocol (0 none, 1 binary, 2 http) and fd in the worker. */
  transport: number;
  connFd: number;
  /** The worker holds its pre-answer unsent (a tier 2/3 answer must carry one first). */
  held: boolean;
  /** True when the slot kept changing (or a dead writer left it mid-write): the values may mix two states. */
  torn: boolean;
}

export interface HeaderView {
  slots: number;
  managerPid: number;
  generation: number;
  mode: SbMode;
  startedAt: number;
  retiredTx: number;
  retiredErrors: number;
  spawned: number;
  deaths: number;
}

export class Scoreboard extends SegmentTable {
  readonly slots: number;
  readonly #i32: Int32Array;
  readonly #buf: Buffer;

  private constructor(seg: Segment) {
    super(seg);
    this.#buf = seg.buf;
    this.#i32 = seg.i32;
    if (this.#buf.length < SB_HEADER || this.#buf.readInt32LE(H.MAGIC) !== SB_MAGIC) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: 'no scoreboard magic', expected: `scoreboard v${SB_VERSION}` });
    }
    const version = this.#buf.readInt32LE(H.VERSION);
    if (version !== SB_VERSION || this.#buf.readInt32LE(H.SLOT_SIZE) !== SB_SLOT) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `scoreboard v${version}`, expected: `scoreboard v${SB_VERSION}` });
    }
    this.slots = this.#buf.readInt32LE(H.SLOTS);
    if (this.slots < 0 || scoreboardBytes(this.slots) > this.#buf.length) {
      throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `${this.slots} slots in ${this.#buf.length} bytes`, expected: 'a consistent slot count' });
    }
  }

  /** Create a fresh scoreboard (a stale one with the same key is removed first). */
  static create(key: number, slots: number, mode: SbMode, generation: number): Scoreboard {
    const seg = createFreshSegment(key, scoreboardBytes(slots), 'scoreboard');
    seg.buf.writeInt32LE(SB_VERSION, H.VERSION);
    seg.buf.writeInt32LE(slots, H.SLOTS);
    seg.buf.writeInt32LE(SB_SLOT, H.SLOT_SIZE);
    seg.buf.writeInt32LE(process.pid, H.PID);
    seg.buf.writeInt32LE(generation, H.GEN);
    seg.buf.writeInt32LE(SB_MODES.indexOf(mode), H.MODE);
    seg.buf.writeDoubleLE(Date.now(), H.STARTED);
    Atomics.store(seg.i32, H.MAGIC >> 2, SB_MAGIC); // last: a reader sees a complete header or none
    return new Scoreboard(seg);
  }

  /** Attach an existing scoreboard; undefined when there is none. */
  static attach(key: number): Scoreboard | undefined {
    return attachSegmentAs(key, (seg) => new Scoreboard(seg));
  }



  // ------------------------------------------------------------ header (manager)

  header(): HeaderView {
    const b = this.#buf;
    for (let tries = 0; ; tries++) {
      const s1 = Atomics.load(this.#i32, H.SEQ >> 2);
      const v: HeaderView = {
        slots: this.slots,
        managerPid: b.readInt32LE(H.PID),
        generation: b.readInt32LE(H.GEN),
        mode: SB_MODES[b.readInt32LE(H.MODE)] ?? 'STATIC_WORKERPOOL',
        startedAt: b.readDoubleLE(H.STARTED),
        retiredTx: b.readDoubleLE(H.RETIRED_TX),
        retiredErrors: b.readDoubleLE(H.RETIRED_ERR),
        spawned: b.readInt32LE(H.SPAWNED),
        deaths: b.readInt32LE(H.DEATHS),
      };
      if (((s1 & 1) === 0 && Atomics.load(this.#i32, H.SEQ >> 2) === s1) || tries > 1000) return v;
    }
  }

  /** Manager: a worker left; fold its counters into the header totals. */
  retire(count: number, errors: number, abnormal: boolean): void {
    this.#headerWrite(() => {
      this.#buf.writeDoubleLE(this.#buf.readDoubleLE(H.RETIRED_TX) + count, H.RETIRED_TX);
      this.#buf.writeDoubleLE(this.#buf.readDoubleLE(H.RETIRED_ERR) + errors, H.RETIRED_ERR);
      if (abnormal) this.#buf.writeInt32LE(this.#buf.readInt32LE(H.DEATHS) + 1, H.DEATHS);
    });
  }

  /** Manager: one more worker spawned. */
  countSpawn(): void {
    this.#headerWrite(() => this.#buf.writeInt32LE(this.#buf.readInt32LE(H.SPAWNED) + 1, H.SPAWNED));
  }

  /** Manager (USR2 handover, issue 5): the header names the serving manager. */
  setManager(pid: number, generation: number): void {
    this.#headerWrite(() => {
      this.#buf.writeInt32LE(pid, H.PID);
      this.#buf.writeInt32LE(generation, H.GEN);
    });
  }

  #headerWrite(fn: () => void): void {
    Atomics.add(this.#i32, H.SEQ >> 2, 1);
    try {
      fn();
    } finally {
      Atomics.add(this.#i32, H.SEQ >> 2, 1);
    }
  }

  // ------------------------------------------------------------ suspended apps

  #suspBase(i: number): number {
    return SB_HEADER + this.slots * SB_SLOT + i * SB_SUSPEND_ENTRY;
  }

  /** Manager: suspend an app. False when it already is, or the table is full. */
  suspend(v: Suspension): boolean {
    if (this.suspension(v.app)) return false;
    for (let i = 0; i < SB_SUSPEND_MAX; i++) {
      const base = this.#suspBase(i);
      if (Atomics.compareExchange(this.#i32, (base + S.STATE) >> 2, SUSP_FREE, SUSP_BUSY) !== SUSP_FREE) continue;
      const b = this.#buf;
      Atomics.add(this.#i32, (base + S.SEQ) >> 2, 1);
      b.writeInt32LE(v.crashes, base + S.CRASHES);
      b.writeInt32LE(v.windowS, base + S.WINDOW);
      b.writeDoubleLE(v.since, base + S.SINCE);
      b.writeDoubleLE(v.size, base + S.SIZE);
      b.writeDoubleLE(v.mtimeMs, base + S.MTIME);
      b.writeDoubleLE(v.ino, base + S.INO);
      b[base + S.APP_LEN] = b.write(v.app, base + S.APP, APP_MAX, 'utf8');
      b[base + S.BIN_LEN] = b.write(v.bin, base + S.BIN, APP_MAX, 'utf8');
      Atomics.add(this.#i32, (base + S.SEQ) >> 2, 1);
      Atomics.store(this.#i32, (base + S.STATE) >> 2, SUSP_ON);
      return true;
    }
    return false;
  }

  /** Manager or `ibas -a resume_app`: lift an app's suspension. False when it was not suspended. */
  resume(app: string): boolean {
    for (let i = 0; i < SB_SUSPEND_MAX; i++) {
      const base = this.#suspBase(i);
      if (Atomics.load(this.#i32, (base + S.STATE) >> 2) !== SUSP_ON || this.#suspApp(base) !== app) continue;
      if (Atomics.compareExchange(this.#i32, (base + S.STATE) >> 2, SUSP_ON, SUSP_BUSY) !== SUSP_ON) continue;
      Atomics.add(this.#i32, (base + S.SEQ) >> 2, 1);
      this.#buf.fill(0, base + S.CRASHES, base + SB_SUSPEND_ENTRY);
      Atomics.add(this.#i32, (base + S.SEQ) >> 2, 1);
      Atomics.store(this.#i32, (base + S.STATE) >> 2, SUSP_FREE);
      return true;
    }
    return false;
  }

  #suspApp(base: number): string {
    return this.#buf.toString('utf8', base + S.APP, base + S.APP + Math.min(this.#buf[base + S.APP_LEN]!, APP_MAX));
  }

  #suspRead(base: number): Suspension | undefined {
    const b = this.#buf;
    for (let tries = 0; tries < 1000; tries++) {
      const s1 = Atomics.load(this.#i32, (base + S.SEQ) >> 2);
      if (Atomics.load(this.#i32, (base + S.STATE) >> 2) !== SUSP_ON) return undefined;
      const v: Suspension = {
        app: this.#suspApp(base),
        bin: b.toString('utf8', base + S.BIN, base + S.BIN + Math.min(b[base + S.BIN_LEN]!, APP_MAX)),
        crashes: b.readInt32LE(base + S.CRASHES),
        windowS: b.readInt32LE(base + S.WINDOW),
        since: b.readDoubleLE(base + S.SINCE),
        size: b.readDoubleLE(base + S.SIZE),
        mtimeMs: b.readDoubleLE(base + S.MTIME),
        ino: b.readDoubleLE(base + S.INO),
      };
      if ((s1 & 1) === 0 && Atomics.load(this.#i32, (base + S.SEQ) >> 2) === s1 && Atomics.load(this.#i32, (base + S.STATE) >> 2) === SUSP_ON) return v;
    }
    return undefined;
  }

  /** Workers (before resolving an app), `-s status`: the app's suspension, if it is suspended. Lock-free. */
  suspension(app: string): Suspension | undefined {
    for (let i = 0; i < SB_SUSPEND_MAX; i++) {
      const base = this.#suspBase(i);
      if (Atomics.load(this.#i32, (base + S.STATE) >> 2) !== SUSP_ON) continue;
      const v = this.#suspRead(base);
      if (v?.app === app) return v;
    }
    return undefined;
  }

  /** Every suspended app. */
  suspensions(): Suspension[] {
    const out: Suspension[] = [];
    for (let i = 0; i < SB_SUSPEND_MAX; i++) {
      const v = this.#suspRead(this.#suspBase(i));
      if (v) out.push(v);
    }
    return out;
  }

  // ------------------------------------------------------------ slots

  #base(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.slots) throw new RangeError(`scoreboard slot ${index} is not within 0..${this.slots - 1}`);
    return SB_HEADER + index * SB_SLOT;
  }

  /** The state of a slot without the seqlock (cheap; for load counting). */
  stateOf(index: number): WorkerState {
    return WORKER_STATES[Atomics.load(this.#i32, (this.#base(index) + F.STATE) >> 2)] ?? 'DEAD';
  }

  /** Workers spawned into a slot so far (0 = never used; saturates at 255). */
  spawnsOf(index: number): number {
    return this.#buf[this.#base(index) + F.SPAWNS]!;
  }

  /** Consistent copy of one slot. */
  read(index: number): SlotView {
    const base = this.#base(index);
    const b = this.#buf;
    const seqIdx = (base + F.SEQ) >> 2;
    let v: SlotView;
    let tries = 0;
    for (;;) {
      const s1 = Atomics.load(this.#i32, seqIdx);
      const appLen = Math.min(b[base + F.APP_LEN]!, APP_MAX);
      v = {
        index,
        pid: b.readInt32LE(base + F.PID),
        generation: b.readInt32LE(base + F.GEN),
        state: WORKER_STATES[b.readInt32LE(base + F.STATE)] ?? 'DEAD',
        count: b.readInt32LE(base + F.COUNT),
        errors: b.readInt32LE(base + F.ERRORS),
        connections: b.readInt32LE(base + F.CONNS),
        timeout2Ms: b.readInt32LE(base + F.TIMEOUT2),
        startedAt: b.readDoubleLE(base + F.STARTED),
        txStartAt: b.readDoubleLE(base + F.TX_START),
        since: b.readDoubleLE(base + F.SINCE),
        app: b.toString('utf8', base + F.APP, base + F.APP + appLen),
        transport: b[base + F.TRANSPORT]!,
        held: b[base + F.HELD] === 1,
        connFd: b[base + F.TRANSPORT] ? b.readInt32LE(base + F.CONN_FD) : -1,
        torn: false,
      };
      if ((s1 & 1) === 0 && Atomics.load(this.#i32, seqIdx) === s1) return v;
      if (++tries > 2000) return { ...v, torn: true };
    }
  }

  all(): SlotView[] {
    const out: SlotView[] = [];
    for (let i = 0; i < this.slots; i++) out.push(this.read(i));
    return out;
  }

  /** Workers alive (any state but DEAD) and those busy with a connection (WORKING, READING or KEEPALIVE). */
  load(): { working: number; total: number } {
    let working = 0;
    let total = 0;
    for (let i = 0; i < this.slots; i++) {
      const s = Atomics.load(this.#i32, (SB_HEADER + i * SB_SLOT + F.STATE) >> 2);
      if (s === 0) continue;
      total++;
      if (s === STATE_NUM.WORKING || s === STATE_NUM.KEEPALIVE || s === STATE_NUM.READING) working++;
    }
    return { working, total };
  }

  /** A slot nobody owns (DEAD, pid 0), or -1. */
  freeSlot(): number {
    for (let i = 0; i < this.slots; i++) {
      const base = SB_HEADER + i * SB_SLOT;
      if (Atomics.load(this.#i32, (base + F.STATE) >> 2) === 0 && Atomics.load(this.#i32, (base + F.PID) >> 2) === 0) return i;
    }
    return -1;
  }

  /**
   * Claim a free slot atomically (pid 0 → -1), so two managers sharing the scoreboard during a
   * USR2 handover never take the same one. Returns its index or -1. Follow with {@link prepare}.
   */
  claimSlot(): number {
    for (let i = 0; i < this.slots; i++) {
      const base = SB_HEADER + i * SB_SLOT;
      if (Atomics.load(this.#i32, (base + F.STATE) >> 2) !== 0) continue;
      if (Atomics.compareExchange(this.#i32, (base + F.PID) >> 2, 0, -1) === 0) return i;
    }
    return -1;
  }

  /**
   * Manager: claim a slot for a worker about to be spawned (state STARTING, counters 0). The pid
   * is filled in by {@link assign} once spawn returned it.
   */
  prepare(index: number, generation: number): void {
    this.#write(index, (base) => {
      const spawns = this.#buf[base + F.SPAWNS]!;
      this.#buf.fill(0, base + 4, base + SB_SLOT);
      this.#buf[base + F.SPAWNS] = Math.min(255, spawns + 1);
      this.#buf.writeInt32LE(-1, base + F.PID); // taken, pid unknown yet
      this.#buf.writeInt32LE(generation, base + F.GEN);
      this.#buf.writeDoubleLE(Date.now(), base + F.STARTED);
      this.#buf.writeDoubleLE(Date.now(), base + F.SINCE);
      this.#buf.writeInt32LE(STATE_NUM.STARTING, base + F.STATE);
    }, true);
  }

  /** Manager: the spawned worker's pid. Skipped if the worker already wrote its own slot. */
  assign(index: number, pid: number): void {
    const base = this.#base(index);
    Atomics.compareExchange(this.#i32, (base + F.PID) >> 2, -1, pid);
  }

  /** Manager: the slot's process is gone; mark it free. Returns its last view. */
  release(index: number): SlotView {
    const last = this.read(index);
    this.#write(index, (base) => {
      const spawns = this.#buf[base + F.SPAWNS]!;
      this.#buf.fill(0, base + 4, base + SB_SLOT);
      this.#buf[base + F.SPAWNS] = spawns; // the slot's history stays (ibas -s status restarts)
    }, true);
    return last;
  }

  /** A writer for a worker's own slot. */
  writer(index: number): SlotWriter {
    this.#base(index);
    return new SlotWriter(this, index);
  }

  /** @internal seqlock write of a slot; `repair` tolerates an odd sequence left by a dead writer. */
  #write(index: number, fn: (base: number) => void, repair = false): void {
    const base = this.#base(index);
    const seqIdx = (base + F.SEQ) >> 2;
    if (!repair || (Atomics.load(this.#i32, seqIdx) & 1) === 0) Atomics.add(this.#i32, seqIdx, 1);
    try {
      fn(base);
    } finally {
      Atomics.add(this.#i32, seqIdx, 1);
    }
  }

  /** @internal */
  writeSlot(index: number, fn: (buf: Buffer, base: number) => void): void {
    this.#write(index, (base) => fn(this.#buf, base));
  }

  /** @internal The slot's memory, for its only writer ({@link SlotWriter}'s per-transaction writes). */
  slotMemory(index: number): { buf: Buffer; i32: Int32Array; base: number } {
    return { buf: this.#buf, i32: this.#i32, base: this.#base(index) };
  }
}

/**
 * The only writer of one worker's slot (used by that worker). The calls of every transaction
 * (state, txBegin, txEnd, connection, transport, held) write the slot directly between the two
 * steps of its seqlock, with no closure; a state the slot already shows is not written again
 * (the worker is the only writer of its slot while it lives, so its own read is the truth).
 */
export class SlotWriter {
  readonly index: number;
  readonly #sb: Scoreboard;
  readonly #buf: Buffer;
  readonly #i32: Int32Array;
  readonly #base: number;
  readonly #seq: number;
  #count = 0;
  #errors = 0;
  #connections = 0;
  /** The app name the slot holds (txBegin writes it only when it changes). */
  #app = '';

  constructor(sb: Scoreboard, index: number) {
    this.#sb = sb;
    this.index = index;
    const m = sb.slotMemory(index);
    this.#buf = m.buf;
    this.#i32 = m.i32;
    this.#base = m.base;
    this.#seq = (m.base + F.SEQ) >> 2;
  }

  get count(): number {
    return this.#count;
  }

  /** The worker starts: its pid, generation and state. */
  start(pid: number, generation: number): void {
    this.#app = '';
    this.#sb.writeSlot(this.index, (b, base) => {
      b.writeInt32LE(pid, base + F.PID);
      b.writeInt32LE(generation, base + F.GEN);
      b.writeInt32LE(0, base + F.COUNT);
      b.writeInt32LE(0, base + F.ERRORS);
      b.writeInt32LE(0, base + F.CONNS);
      b.writeDoubleLE(Date.now(), base + F.STARTED);
      b.writeDoubleLE(0, base + F.TX_START);
      b[base + F.APP_LEN] = 0;
      setState(b, base, 'IDLE');
    });
  }

  state(s: WorkerState): void {
    if (this.#buf.readInt32LE(this.#base + F.STATE) === STATE_NUM[s]) return;
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      setState(this.#buf, this.#base, s);
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** A connection was accepted: READING until its request is in. */
  connection(): void {
    this.#connections++;
    const b = this.#buf;
    const base = this.#base;
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      b.writeInt32LE(this.#connections, base + F.CONNS);
      setState(b, base, 'READING');
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** The connection's protocol and fd (transport 0 when the connection is over). */
  transport(fd: number, transport: number): void {
    const b = this.#buf;
    const base = this.#base;
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      b[base + F.TRANSPORT] = transport;
      b.writeInt32LE(fd, base + F.CONN_FD);
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** Whether answers are held unsent in the worker while its app runs. */
  held(on: boolean): void {
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      this.#buf[this.#base + F.HELD] = on ? 1 : 0;
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** A transaction starts: state WORKING, app, start time, timeout2 (for the manager's tiers). */
  txBegin(app: string, timeout2Ms: number): void {
    const b = this.#buf;
    const base = this.#base;
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      if (app !== this.#app) {
        const n = Math.min(Buffer.byteLength(app), APP_MAX);
        b[base + F.APP_LEN] = b.write(app, base + F.APP, n, 'utf8');
        this.#app = app;
      }
      b.writeInt32LE(Math.min(Math.max(Math.round(timeout2Ms), 0), 0x7fffffff), base + F.TIMEOUT2);
      b.writeDoubleLE(Date.now(), base + F.TX_START);
      setState(b, base, 'WORKING');
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** The transaction ended (answered); `next` is the state the worker goes to. */
  txEnd(ok: boolean, next: WorkerState): void {
    this.#count++;
    if (!ok) this.#errors++;
    const b = this.#buf;
    const base = this.#base;
    Atomics.add(this.#i32, this.#seq, 1);
    try {
      b.writeInt32LE(this.#count, base + F.COUNT);
      b.writeInt32LE(this.#errors, base + F.ERRORS);
      b.writeDoubleLE(0, base + F.TX_START);
      b.writeInt32LE(0, base + F.TIMEOUT2);
      setState(b, base, next);
    } finally {
      Atomics.add(this.#i32, this.#seq, 1);
    }
  }

  /** A failure outside a transaction (a malformed frame): counted as an error. */
  error(): void {
    this.#errors++;
    this.#sb.writeSlot(this.index, (b, base) => b.writeInt32LE(this.#errors, base + F.ERRORS));
  }
}

function setState(b: Buffer, base: number, s: WorkerState): void {
  if (b.readInt32LE(base + F.STATE) !== STATE_NUM[s]) {
    b.writeInt32LE(STATE_NUM[s], base + F.STATE);
    b.writeDoubleLE(Date.now(), base + F.SINCE);
  }
}

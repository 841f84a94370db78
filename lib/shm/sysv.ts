/**
 * System V shared memory and semaphores: the only module that talks to shmget/shmctl/shmat/semop.
 *
 * Segments are created and mapped with shm-typed-array (Buffers over the mapping); shmctl, the
 * attach-count query and semaphores go through koffi.
 *
 * THE PIN. shm-typed-array removes a SysV segment (IPC_RMID) whenever its own detach leaves the
 * attach count at 0 — on explicit detach, when a Buffer is garbage-collected, and for every
 * segment at process exit. IBP needs segments that outlive their creator (`ibma -a stop` keeps the
 * config space for clients). So every {@link Segment} also holds a second, read-only attachment
 * made with shmat through koffi (the pin): while this process lives, its shm-typed-array detach can
 * never see a count of 0, and when the process exits the kernel drops the pin without removing the
 * segment. Removal is always explicit: {@link destroySegment}.
 *
 * SAFE DETACH. shm-typed-array keeps a record per shmid for the life of the process. Its own
 * detach (by key) leaves that record behind, and when the Buffer is garbage-collected or the
 * process exits it IPC_RMIDs the segment if nobody is attached at that moment — "detached" would
 * later mean "removed". So {@link Segment.detach} keeps the detached Buffer reachable (no
 * finalizer runs) and, at exit, every detached segment that still exists is pinned again before
 * shm-typed-array's exit handler runs. A key that no longer names this segment (removed and
 * reused) is not detached by key (that would unmap the newer segment): the mapping is dropped by
 * address instead. Two mappings of one segment in one process confuse shm-typed-array's record:
 * lib/shm/attachments.ts shares one per process.
 *
 * Layout of struct shmid_ds on x86_64/aarch64 Linux (glibc): shm_segsz @48, shm_cpid @80,
 * shm_lpid @84, shm_nattch @88, 112 bytes in all.
 */
import { formatKey } from './keys.js';
import shm from 'shm-typed-array';
import { IbpError } from '../errors.js';
import { koffi, lastErrno, libc } from '../native/libc.js';

const IPC_CREAT = 0o1000;
const IPC_EXCL = 0o2000;
const IPC_RMID = 0;
const IPC_SET = 1;
const IPC_STAT = 2;
const SHM_RDONLY = 0o10000;
const GETVAL = 12;
const SETVAL = 16;
const SEM_UNDO = 0x1000;
const IPC_NOWAIT = 0o4000;
const SHMID_DS_SIZE = 112;

const shmget = libc.func('int shmget(int key, size_t size, int shmflg)');
const shmat = libc.func('void *shmat(int shmid, void *shmaddr, int shmflg)');
const shmdt = libc.func('int shmdt(void *shmaddr)');
const shmctl = libc.func('int shmctl(int shmid, int cmd, _Inout_ uint8_t *buf)');
const semget = libc.func('int semget(int key, int nsems, int semflg)');
const semctlInt = libc.func('int semctl(int semid, int semnum, int cmd, int arg)');
koffi.struct('ibp_sembuf', { sem_num: 'uint16_t', sem_op: 'int16_t', sem_flg: 'int16_t' });
const semop = libc.func('int semop(int semid, ibp_sembuf *sops, size_t nsops)');
const semtimedop = libc.func('int semtimedop(int semid, void *sops, size_t nsops, void *timeout)') as (id: number, sops: Buffer, n: number, ts: Buffer) => number;

function fail(call: string): never {
  throw new IbpError('IBP_ERR_SHM_SYSCALL', { call, detail: lastErrno().text });
}

export interface SegmentStat {
  shmid: number;
  size: number;
  nattch: number;
  cpid: number;
  lpid: number;
  mode: number;
}

/** shmid of the segment with this key, or -1 when none exists. */
export function shmidOf(key: number): number {
  return shmget(key, 0, 0) as number;
}

export function statSegment(shmid: number): SegmentStat | undefined {
  const buf = Buffer.alloc(SHMID_DS_SIZE + 16);
  if ((shmctl(shmid, IPC_STAT, buf) as number) !== 0) return undefined;
  return {
    shmid,
    mode: buf.readUInt16LE(20),
    size: Number(buf.readBigUInt64LE(48)),
    cpid: buf.readInt32LE(80),
    lpid: buf.readInt32LE(84),
    nattch: Number(buf.readBigUInt64LE(88)),
  };
}

/** Number of processes attached (each attachment counts: a pinned Segment counts 2). */
export function attachCount(key: number): number {
  const id = shmidOf(key);
  if (id < 0) return -1;
  return statSegment(id)?.nattch ?? -1;
}

/** A mapped segment; {@link Segment.detach} unmaps it without ever removing it. */
export class Segment {
  readonly key: number;
  readonly shmid: number;
  readonly buf: Buffer;
  /** The same bytes as Int32 for Atomics (CAS on loads, sequence numbers). */
  readonly i32: Int32Array;
  #pin: unknown;

  private constructor(key: number, shmid: number, buf: Buffer, pin: unknown) {
    this.key = key;
    this.shmid = shmid;
    this.buf = buf;
    this.i32 = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
    this.#pin = pin;
  }

  get attached(): boolean {
    return this.#pin !== undefined;
  }

  /** Create a new segment; undefined when the key is already taken. Size is rounded up to 8. */
  static create(key: number, size: number, perm = 0o600): Segment | undefined {
    assertKey(key);
    const rounded = Math.ceil(size / 8) * 8;
    const buf = shm.create(rounded, 'Buffer', key, perm.toString(8));
    if (!buf) return undefined;
    const shmid = shmidOf(key);
    if (shmid < 0) fail('shmget');
    return new Segment(key, shmid, buf, pin(shmid));
  }

  /** Attach an existing segment; undefined when there is none with this key. */
  static attach(key: number): Segment | undefined {
    assertKey(key);
    const shmid = shmidOf(key);
    if (shmid < 0) return undefined;
    const p = pin(shmid, true);
    if (p === undefined) return undefined;
    let buf: Buffer | null;
    try {
      buf = shm.get(key, 'Buffer');
    } catch (e) {
      shmdt(p);
      throw e;
    }
    if (!buf) {
      shmdt(p);
      return undefined;
    }
    return new Segment(key, shmid, buf, p);
  }

  /** Unmap. The segment stays until someone calls {@link destroySegment}. Idempotent. */
  detach(): void {
    if (this.#pin === undefined) return;
    if (shmidOf(this.key) === this.shmid) shm.detach(this.key, false); // the pin keeps the count above 0
    else shmdt(this.buf);
    shmdt(this.#pin);
    this.#pin = undefined;
    retired.set(this.shmid, this);
  }
}

/** Every segment this process detached, by shmid: kept reachable on purpose (see the header). */
const retired = new Map<number, Segment>();
const exitPins: unknown[] = [];

process.prependListener('exit', () => {
  for (const [shmid, seg] of retired) {
    try {
      if (shmidOf(seg.key) === shmid) exitPins.push(pin(shmid, true));
    } catch {
      // exiting anyway
    }
  }
});

function pin(shmid: number, soft = false): unknown {
  const p = shmat(shmid, null, SHM_RDONLY);
  if (koffi.address(p) === BigInt('0xffffffffffffffff') || p === null) {
    if (soft) return undefined;
    fail('shmat');
  }
  return p;
}

function assertKey(key: number): void {
  if (!Number.isInteger(key) || key <= 0 || key > 0x7fffffff) throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: 'shm key', detail: `${formatKey(key)} (${key}) is not a positive 31-bit integer` });
}

/** Remove a segment by key (it disappears once the last process detaches). False if none. */
export function destroySegment(key: number): boolean {
  const id = shmidOf(key);
  if (id < 0) return false;
  return (shmctl(id, IPC_RMID, null) as number) === 0;
}

/**
 * A fresh, zeroed segment for a table one process owns (scoreboard, app stats, replay cache): a
 * stale one with the key is removed first. The caller writes its header, its magic word last, so
 * a reader sees a complete header or none.
 */
export function createFreshSegment(key: number, size: number, what: string): Segment {
  destroySegment(key);
  const seg = Segment.create(key, size);
  if (!seg) throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: `shmget(${what})`, detail: `key ${formatKey(key)} is taken` });
  seg.buf.fill(0);
  return seg;
}

/**
 * Attach an existing segment and wrap it in its table class; undefined when there is none. When
 * the wrapper refuses it (another layout), the segment is detached and the error thrown.
 */
export function attachSegmentAs<T>(key: number, wrap: (seg: Segment) => T): T | undefined {
  const seg = Segment.attach(key);
  if (!seg) return undefined;
  try {
    return wrap(seg);
  } catch (e) {
    seg.detach();
    throw e;
  }
}

/** A table that lives in one segment: detach (unmap) or destroy (unmap and remove: its owner at stop). */
export class SegmentTable {
  readonly seg: Segment;

  protected constructor(seg: Segment) {
    this.seg = seg;
  }

  detach(): void {
    this.seg.detach();
  }

  destroy(): void {
    const key = this.seg.key;
    this.seg.detach();
    destroySegment(key);
  }
}

/** Attach a table when it exists with this layout (a USR2 new generation keeps it), else create a fresh one. */
export function attachOrCreate<T>(attach: () => T | undefined, create: () => T): T {
  try {
    const t = attach();
    if (t) return t;
  } catch {
    // another layout: replace it
  }
  return create();
}

/** Every segment on the machine as (key, shmid, nattch, cpid): /proc/sysvipc/shm, as ipcs -m reads it. */
export async function listSegments(): Promise<{ key: number; shmid: number; size: number; nattch: number; cpid: number }[]> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile('/proc/sysvipc/shm', 'utf8');
  const rows = text.trim().split('\n').slice(1);
  return rows.map((r) => {
    const f = r.trim().split(/\s+/).map(Number);
    return { key: f[0]!, shmid: f[1]!, size: f[3]!, cpid: f[4]!, nattch: f[6]! };
  });
}

/**
 * A SysV semaphore set of one, used as a crash-safe mutex: operations carry SEM_UNDO, so the
 * kernel gives the semaphore back when a holder dies (tcpdaemon's accept lock).
 */
export class Semaphore {
  readonly key: number;
  readonly semid: number;

  private constructor(key: number, semid: number) {
    this.key = key;
    this.semid = semid;
  }

  /** Create (value 1, i.e. unlocked) or open the set with this key. */
  static open(key: number, create: boolean, perm = 0o600): Semaphore {
    assertKey(key);
    let id = semget(key, 1, create ? IPC_CREAT | IPC_EXCL | perm : 0) as number;
    if (id < 0 && create && lastErrno().text.startsWith('EEXIST')) {
      id = semget(key, 1, 0) as number;
      if (id >= 0 && (semctlInt(id, 0, SETVAL, 1) as number) !== 0) fail('semctl(SETVAL)');
      return new Semaphore(key, id);
    }
    if (id < 0) fail('semget');
    if (create && (semctlInt(id, 0, SETVAL, 1) as number) !== 0) fail('semctl(SETVAL)');
    return new Semaphore(key, id);
  }

  value(): number {
    return semctlInt(this.semid, 0, GETVAL, 0) as number;
  }

  /** Take the lock without blocking; false when another process holds it. */
  tryLock(): boolean {
    const r = semop(this.semid, [{ sem_num: 0, sem_op: -1, sem_flg: SEM_UNDO | IPC_NOWAIT }], 1) as number;
    if (r === 0) return true;
    if (lastErrno().text.startsWith('EAGAIN')) return false;
    fail('semop(lock)');
  }

  /** Block for the lock on koffi's thread pool (the event loop stays free). */
  lock(): Promise<void> {
    return new Promise((resolve, reject) => {
      semop.async(this.semid, [{ sem_num: 0, sem_op: -1, sem_flg: SEM_UNDO }], 1, (err: unknown, r: number) => {
        if (err) reject(err);
        else if (r !== 0) reject(new IbpError('IBP_ERR_SHM_SYSCALL', { call: 'semop(lock)', detail: lastErrno().text }));
        else resolve();
      });
    });
  }

  /**
   * Wait for the lock on the calling thread for at most `ms` (semtimedop with a prebuilt sembuf:
   * no marshalling, no thread hop). 'interrupted': a signal ended the wait (semtimedop is never
   * restarted), so the caller can give its event loop a turn. Throws when the set was removed.
   */
  lockWithin(ms: number): 'locked' | 'timeout' | 'interrupted' {
    const ts = this.#timespec;
    if (ms !== this.#timespecMs) {
      // a worker waits in rounds of the same length: the timespec is written once
      ts.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
      ts.writeBigInt64LE(BigInt(Math.floor((ms % 1000) * 1_000_000)), 8);
      this.#timespecMs = ms;
    }
    if (semtimedop(this.semid, this.#lockOp, 1, ts) === 0) return 'locked';
    const { errno } = lastErrno();
    if (errno === EAGAIN_) return 'timeout';
    if (errno === EINTR_) return 'interrupted';
    fail('semtimedop(lock)');
  }

  readonly #lockOp = sembufOf(-1, SEM_UNDO);
  readonly #timespec = Buffer.alloc(16);
  #timespecMs = -1;

  readonly #unlockOp = sembufOf(1, SEM_UNDO);

  unlock(): void {
    if (semtimedop(this.semid, this.#unlockOp, 1, null as unknown as Buffer) !== 0) fail('semop(unlock)');
  }

  /** Remove the set (wakes blocked lockers with EIDRM). */
  remove(): void {
    semctlInt(this.semid, 0, IPC_RMID, 0);
  }
}

const EAGAIN_ = 11;
const EINTR_ = 4;

/** One struct sembuf (unsigned short sem_num = 0, short sem_op, short sem_flg) as bytes. */
function sembufOf(op: number, flags: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16LE(0, 0);
  b.writeInt16LE(op, 2);
  b.writeInt16LE(flags, 4);
  return b;
}

export const SYSV = { IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_SET, IPC_STAT } as const;

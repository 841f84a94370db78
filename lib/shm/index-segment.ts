/**
 * The index segment: the public, well-known key (ibma.conf shm.index_key) that tells every reader
 * which config segment is current. Its one live field is a single 64-bit word
 * `generation << 32 | key`, written with Atomics.store and read with Atomics.load, so a reader never
 * pairs the key of one publication with the generation of another (layout: lib/shm/layout.ts INDEX).
 */
import { formatKey } from './keys.js';
import { IbpError } from '../errors.js';
import { attachShared, createShared, forgetShared, releaseShared } from './attachments.js';
import { INDEX, INDEX_MAGIC, LAYOUT_VERSION } from './layout.js';
import type { Segment } from './sysv.js';

export interface IndexWord {
  /** Key of the current config segment; 0 when nothing was published yet. */
  key: number;
  generation: number;
}

export class IndexSegment {
  readonly seg: Segment;
  readonly #word: BigInt64Array;

  private constructor(seg: Segment) {
    this.seg = seg;
    this.#word = new BigInt64Array(seg.buf.buffer, seg.buf.byteOffset + INDEX.CURRENT, 1);
  }

  get key(): number {
    return this.seg.key;
  }

  get shmid(): number {
    return this.seg.shmid;
  }

  /** Attach an existing index segment (a reader). Undefined when there is none with this key. */
  static attach(key: number): IndexSegment | undefined {
    const seg = attachShared(key, true);
    if (!seg) return undefined;
    try {
      checkIndex(seg);
    } catch (e) {
      releaseShared(seg);
      throw e;
    }
    return new IndexSegment(seg);
  }

  /** Attach the index segment with this key, creating it first when it does not exist (the writer). */
  static openOrCreate(key: number): IndexSegment {
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = createShared(key, INDEX.SIZE);
      if (created) {
        created.buf.fill(0, 0, INDEX.SIZE);
        created.buf.writeUInt32LE(LAYOUT_VERSION, INDEX.VERSION);
        created.buf.writeInt32LE(process.pid, INDEX.WRITER_PID);
        // the magic last: a reader that sees it sees a complete (empty) index
        Atomics.store(new Int32Array(created.buf.buffer, created.buf.byteOffset, 1), 0, INDEX_MAGIC | 0);
        return new IndexSegment(created);
      }
      const seg = attachShared(key);
      if (!seg) continue; // removed between the two calls: try again
      try {
        checkIndex(seg);
      } catch (e) {
        releaseShared(seg);
        throw e;
      }
      return new IndexSegment(seg);
    }
    throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: `shmget(index ${formatKey(key)})`, detail: 'the key keeps being created and removed by another process' });
  }

  /** The current (key, generation), read as one atomic 64-bit word. */
  read(): IndexWord {
    const w = Atomics.load(this.#word, 0);
    return { key: Number(w & 0xffffffffn), generation: Number(w >> 32n) };
  }

  /** Point readers at a new config segment (one atomic 64-bit store). */
  write(key: number, generation: number): void {
    this.seg.buf.writeInt32LE(process.pid, INDEX.WRITER_PID);
    this.seg.buf.writeDoubleLE(Date.now(), INDEX.PUBLISHED_AT);
    Atomics.store(this.#word, 0, (BigInt(generation >>> 0) << 32n) | BigInt(key >>> 0));
  }

  writerPid(): number {
    return this.seg.buf.readInt32LE(INDEX.WRITER_PID);
  }

  publishedAt(): number {
    return this.seg.buf.readDoubleLE(INDEX.PUBLISHED_AT);
  }

  /** Give back this attachment (readers keep the index mapped until exit; see attachments.ts). */
  close(): void {
    releaseShared(this.seg);
  }

  /** Detach for good (the writer, after removing the segment). */
  closeForGood(): void {
    releaseShared(this.seg);
    forgetShared(this.seg);
  }
}

function checkIndex(seg: Segment): void {
  if (seg.buf.length < INDEX.SIZE) {
    throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `a segment of ${seg.buf.length} bytes`, expected: `an index of ${INDEX.SIZE} bytes, version ${LAYOUT_VERSION}` });
  }
  const magic = seg.buf.readUInt32LE(INDEX.MAGIC);
  if (magic === 0) throw new IbpError('IBP_ERR_SHM_NO_SPACE', { key: seg.key }); // being created right now
  const version = seg.buf.readUInt32LE(INDEX.VERSION);
  if (magic !== INDEX_MAGIC) {
    throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `magic 0x${magic.toString(16)} (not an IBP index segment)`, expected: `index version ${LAYOUT_VERSION}` });
  }
  if (version !== LAYOUT_VERSION) {
    throw new IbpError('IBP_ERR_SHM_LAYOUT', { key: seg.key, found: `index version ${version}`, expected: `index version ${LAYOUT_VERSION}` });
  }
}

/**
 * One attachment per segment per process, shared and reference-counted.
 *
 * Why: shm-typed-array keeps one record per shmid, not per mapping. If a process maps the same
 * segment twice (a writer and a reader in one process, or two readers) and detaches one of them,
 * shm-typed-array unmaps the OTHER mapping (the first one it recorded): the next access to it kills
 * the process with SIGSEGV. So every config-space module attaches through here: a second user of a
 * segment in the same process gets the same {@link Segment}, and the segment is detached when its
 * last user releases it.
 *
 * Detached is not forgotten. shm-typed-array keeps the shmid of every segment a process ever mapped,
 * and removes the segment (IPC_RMID) when its attach count is 0 at two moments: when the Buffer is
 * garbage-collected, and at process exit — even long after an explicit detach. The pin of
 * lib/shm/sysv.ts covers segments that are still attached, not detached ones: a reader that closed
 * the config space and exited would remove the live config segment of the node. So this module
 * (1) keeps every detached Segment reachable for the life of the process (its Buffer is never
 * collected: no finalizer runs), and (2) at exit, BEFORE shm-typed-array's own exit handler, pins
 * again every detached segment that still exists, so the handler sees a non-zero attach count.
 * Segments are only ever removed explicitly (destroySegment).
 *
 * Detaching goes by key in shm-typed-array, so a segment removed while still attached here (only
 * `removeAll`/start_cleanly do that) stays mapped until exit: detaching it could hit the segment
 * that re-uses its key.
 *
 * Known limit (lib/shm/sysv.ts): once a segment is detached, attaching the SAME shmid again in the
 * same process maps it anew, and that mapping is never unmapped before the process exits (it keeps
 * the segment's attach count up). Readers attach each config segment once per process in normal
 * use; the index segment is the exception (see {@link attachShared}'s `keep`).
 */
import { Segment, shmidOf } from './sysv.js';

interface Entry {
  seg: Segment;
  users: number;
  /** Never detached before exit (see attachShared). */
  keep: boolean;
}

const byShmid = new Map<number, Entry>();
/** Every segment this process detached, by shmid (kept reachable on purpose: see above). */
const retired = new Map<number, Segment>();
/** Pins taken at exit (reachable until the kernel drops them). */
const exitPins: Segment[] = [];

function retire(seg: Segment): void {
  // Segment.detach() goes through shm-typed-array, which detaches BY KEY: once the segment was
  // removed and its key re-used, that would unmap the new segment's mapping instead (SIGSEGV on the
  // next access). A removed segment's mapping is then left to the process exit.
  if (shmidOf(seg.key) === seg.shmid) seg.detach();
  retired.set(seg.shmid, seg);
}

process.prependListener('exit', () => {
  for (const [shmid, seg] of retired) {
    try {
      if (shmidOf(seg.key) === shmid) {
        const pin = Segment.attach(seg.key);
        if (pin) exitPins.push(pin);
      }
    } catch {
      // exiting anyway
    }
  }
});

/**
 * Attach the segment with this key, or share this process's attachment of it. Undefined when no
 * segment has the key. `keep`: stay mapped after the last release (for the index segment, which a
 * process re-opens often and which never goes away while ibma lives).
 */
export function attachShared(key: number, keep = false): Segment | undefined {
  const id = shmidOf(key);
  if (id < 0) return undefined;
  const known = byShmid.get(id);
  if (known?.seg.attached) {
    known.users++;
    known.keep ||= keep;
    return known.seg;
  }
  const seg = Segment.attach(key);
  if (!seg) return undefined;
  const again = byShmid.get(seg.shmid);
  if (again?.seg.attached) {
    // the key was re-created between the two lookups onto a segment we already hold: impossible in
    // practice (a new shmid is never one we hold); refuse rather than map it twice
    throw new Error(`shm: segment ${seg.shmid} mapped twice in one process`);
  }
  byShmid.set(seg.shmid, { seg, users: 1, keep });
  return seg;
}

/** Create a segment (undefined when the key is taken) and register it with one user. */
export function createShared(key: number, size: number, perm = 0o600): Segment | undefined {
  const seg = Segment.create(key, size, perm);
  if (!seg) return undefined;
  byShmid.set(seg.shmid, { seg, users: 1, keep: false });
  return seg;
}

/** Give back one use; the last one detaches (unless kept). Idempotent per use only: call once. */
export function releaseShared(seg: Segment): void {
  const e = byShmid.get(seg.shmid);
  if (!e || e.seg !== seg) {
    if (seg.attached) retire(seg);
    return;
  }
  e.users = Math.max(0, e.users - 1);
  if (e.users === 0 && !e.keep) {
    byShmid.delete(seg.shmid);
    retire(seg);
  }
}

/** Detach a kept segment for good once nobody in this process uses it (e.g. after removing it). */
export function forgetShared(seg: Segment): void {
  const e = byShmid.get(seg.shmid);
  if (e && e.seg === seg) {
    e.keep = false;
    if (e.users === 0) {
      byShmid.delete(seg.shmid);
      retire(seg);
    }
  }
}

/** Users of this shmid in this process (0 when not attached here). */
export function localUsers(shmid: number): number {
  const e = byShmid.get(shmid);
  return e?.seg.attached ? Math.max(e.users, e.keep ? 1 : 0) : 0;
}

/** Attachments this process holds on the segment: a mapped Segment counts 2 (mapping + pin). */
export function localAttachments(shmid: number): number {
  const e = byShmid.get(shmid);
  return e?.seg.attached ? 2 : 0;
}

/**
 * One attachment per segment per process, shared and reference-counted.
 *
 * Every config-space module attaches through here instead of calling Segment.attach/detach itself.
 * shm-typed-array (under lib/shm/sysv.ts) keeps one record per shmid, not per mapping: two
 * mappings of one segment in a process would confuse it, so a process maps a segment once and
 * further users share it, reference-counted. lib/shm/sysv.ts itself makes a detach safe (by
 * address, detached Buffers kept reachable, re-pinned at exit so nothing is removed implicitly).
 *
 * A re-attachment of a segment this process detached before is kept until exit (at most one extra
 * mapping per segment), and a closed config space lingers a moment before it detaches, so that a
 * process that opens and closes the space per call (ibac's requester) re-uses one mapping.
 */
import { Segment, shmidOf } from './sysv.js';

interface Entry {
  seg: Segment;
  users: number;
  /** Never detached before exit (the index segment; re-attached segments). */
  keep: boolean;
  /** Set while a released segment lingers before its detach. */
  linger?: NodeJS.Timeout;
}

const byShmid = new Map<number, Entry>();
/** Shmids this process detached before (a re-attachment of one is kept: see the header). */
const retired = new Set<number>();

function retire(seg: Segment): void {
  seg.detach();
  retired.add(seg.shmid);
}

/**
 * Attach the segment with this key, or share this process's attachment of it. Undefined when no
 * segment has the key. `keep`: stay mapped after the last release (for the index segment, which
 * never goes away while ibma lives).
 */
export function attachShared(key: number, keep = false): Segment | undefined {
  const id = shmidOf(key);
  if (id < 0) return undefined;
  const known = byShmid.get(id);
  if (known?.seg.attached) {
    known.users++;
    known.keep ||= keep;
    if (known.linger) {
      clearTimeout(known.linger);
      known.linger = undefined;
    }
    return known.seg;
  }
  const seg = Segment.attach(key);
  if (!seg) return undefined;
  if (byShmid.get(seg.shmid)?.seg.attached) {
    // the key was re-created between the two lookups onto a segment we already hold: impossible in
    // practice (a new shmid is never one we hold); refuse rather than map it twice
    throw new Error(`shm: segment ${seg.shmid} mapped twice in one process`);
  }
  byShmid.set(seg.shmid, { seg, users: 1, keep: keep || retired.has(seg.shmid) }); // re-attachment: kept
  return seg;
}

/** Create a segment (undefined when the key is taken) and register it with one user. */
export function createShared(key: number, size: number, perm = 0o600): Segment | undefined {
  const seg = Segment.create(key, size, perm);
  if (!seg) return undefined;
  byShmid.set(seg.shmid, { seg, users: 1, keep: false });
  return seg;
}

/**
 * Give back one use. The last one detaches, unless the segment is kept, or after `lingerMs` (an
 * unref'd timer: it keeps no process alive) when nobody took it again meanwhile.
 */
export function releaseShared(seg: Segment, lingerMs = 0): void {
  const e = byShmid.get(seg.shmid);
  if (!e || e.seg !== seg) {
    if (seg.attached) retire(seg);
    return;
  }
  e.users = Math.max(0, e.users - 1);
  if (e.users > 0 || e.keep) return;
  if (lingerMs > 0) {
    if (e.linger) clearTimeout(e.linger);
    e.linger = setTimeout(() => {
      e.linger = undefined;
      if (e.users === 0 && !e.keep && byShmid.get(seg.shmid) === e) {
        byShmid.delete(seg.shmid);
        retire(seg);
      }
    }, lingerMs);
    e.linger.unref();
    return;
  }
  byShmid.delete(seg.shmid);
  retire(seg);
}

/** Detach a kept segment for good once nobody in this process uses it (e.g. after removing it). */
export function forgetShared(seg: Segment): void {
  const e = byShmid.get(seg.shmid);
  if (e && e.seg === seg) {
    e.keep = false;
    if (e.users === 0) {
      if (e.linger) clearTimeout(e.linger);
      byShmid.delete(seg.shmid);
      retire(seg);
    }
  }
}

/** Users of this shmid in this process, counting a kept or lingering attachment as one. */
export function localUsers(shmid: number): number {
  const e = byShmid.get(shmid);
  if (!e?.seg.attached) return 0;
  return Math.max(e.users, e.keep || e.linger ? 1 : 0);
}

/** How this process holds a segment (ops and tests): undefined when it does not. */
export function attachmentInfo(shmid: number): { users: number; kept: boolean; lingering: boolean } | undefined {
  const e = byShmid.get(shmid);
  if (!e?.seg.attached) return undefined;
  return { users: e.users, kept: e.keep, lingering: e.linger !== undefined };
}

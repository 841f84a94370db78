/**
 * SysV keys of one home. Every home owns a block of 256 keys, derived from the hash of its real
 * path, so several instances on one machine (and parallel test runs) never collide:
 *
 *   base + 0          ibma's public index segment (default of ibma.conf shm.index_key)
 *   base + 1          ibas's scoreboard
 *   base + 2          ibas's accept-lock semaphore (semaphore key space)
 *   base + 3          ibas's per-app transaction counters (ibas/app-stats.ts)
 *   base + 4          ibas's replay cache of signed hellos (ibas/replay-cache.ts)
 *   base + 16 … 255   ibma's config segments, used round-robin (taken keys are skipped)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const KEY_SLOT = { INDEX: 0, SCOREBOARD: 1, ACCEPT_LOCK: 2, APP_STATS: 3, REPLAY_CACHE: 4, CONFIG_FIRST: 16, CONFIG_LAST: 255 } as const;

/** A SysV key as every output prints it (tables, logs, errors): hex with `0x`. */
export function formatKey(key: number): string {
  return `0x${(key >>> 0).toString(16)}`;
}

export function homeKeyBase(homeRoot: string): number {
  let real = path.resolve(homeRoot);
  try {
    real = fs.realpathSync(real);
  } catch {
    // not created yet: the resolved path is as good
  }
  const h = crypto.createHash('sha256').update(real).digest();
  // 23 bits of hash in bits 8..30: positive, never 0 (IPC_PRIVATE), low byte free for the slots
  const base = ((h.readUInt32BE(0) & 0x7fffff) << 8) >>> 0;
  return base === 0 ? 0x100 : base;
}

/** The key block a key belongs to (for cleanup of a home's segments). */
export function keyBlock(key: number): number {
  return key & 0x7fffff00;
}

/**
 * Removing a config space without a running agent (`ibma -a start_cleanly` before it starts,
 * `ibma -a stop_cleanly` when the agent is already gone): the index segment and every config
 * segment of its key range (index key + 16 … + 255). Readers still attached keep their mapping
 * until they detach (SysV semantics), as in IBP ("慎用": use with care).
 */
import { ConfigSpaceWriter } from '../lib/shm/config-segment.js';
import { KEY_SLOT } from '../lib/shm/keys.js';
import { destroySegment, shmidOf } from '../lib/shm/sysv.js';

/** Remove every segment of the space; returns the keys that were removed. */
export function removeSpace(indexKey: number): number[] {
  const removed: number[] = [];
  if (shmidOf(indexKey) >= 0) {
    try {
      // the writer knows the current segment and its chain: let it remove what it made
      new ConfigSpaceWriter(indexKey).removeAll();
      removed.push(indexKey);
    } catch {
      // not a readable index (other layout): the sweep below removes it anyway
    }
  }
  for (let slot = KEY_SLOT.CONFIG_FIRST; slot <= KEY_SLOT.CONFIG_LAST; slot++) {
    const key = indexKey + slot;
    if (key > 0x7fffffff) break;
    if (shmidOf(key) >= 0 && destroySegment(key)) removed.push(key);
  }
  if (shmidOf(indexKey) >= 0 && destroySegment(indexKey) && !removed.includes(indexKey)) removed.push(indexKey);
  return removed;
}

/**
 * Removing a config space without a running agent (`ibma -a start_cleanly` before it starts,
 * `ibma -a stop_cleanly` when the agent is already gone): the index segment and every config
 * segment of its key range (index key + 16 … + 255). Readers still attached keep their mapping
 * until they detach (SysV semantics), as in IBP ("慎用": use with care).
 */
import { ConfigSpaceWriter } from '../lib/shm/config-segment.js';
import { KEY_SLOT } from '../lib/shm/keys.js';
import { destroySegment, shmidOf } from '../lib/shm/sysv.js';

/** Every key of the space: the index key, then the config keys. */
export function spaceKeys(indexKey: number): number[] {
  const keys = [indexKey];
  for (let slot = KEY_SLOT.CONFIG_FIRST; slot <= KEY_SLOT.CONFIG_LAST && indexKey + slot <= 0x7fffffff; slot++) keys.push(indexKey + slot);
  return keys;
}

/** Remove every segment of the space; returns the keys that were removed. */
export function removeSpace(indexKey: number): number[] {
  const present = spaceKeys(indexKey).filter((k) => shmidOf(k) >= 0);
  if (present.includes(indexKey)) {
    try {
      // the writer knows the current segment and its chain: let it remove what it made
      new ConfigSpaceWriter(indexKey).removeAll();
    } catch {
      // not a readable index (other layout): the sweep below removes it anyway
    }
  }
  for (const key of present) if (shmidOf(key) >= 0) destroySegment(key);
  return present.filter((k) => shmidOf(k) < 0);
}

/**
 * Keep the config space when this process exits.
 *
 * shm-typed-array remembers every segment a process ever mapped, even after an explicit detach, and
 * at exit (its 'exit' listener and its node::AtExit hook) removes each one whose attach count is 0
 * at that moment. A process that detached the space's segments (the agent after `-a stop`, or
 * `ibma -s …`, whose reader closes before exiting) would therefore take the whole config space
 * down with it when nobody else happens to be attached: the opposite of `-a stop`'s contract.
 *
 * So, just before shm-typed-array's exit listener runs, re-attach every segment of the space that
 * still exists (a pinned attachment: lib/shm/sysv.ts Segment.attach). The attach count is then
 * above 0 when shm-typed-array looks, nothing is removed, and the kernel drops the attachments when
 * the process is gone. Segments removed on purpose (stop_cleanly, garbage collection) are already
 * gone from the key space and are not touched.
 */
import { KEY_SLOT } from '../lib/shm/keys.js';
import { Segment, shmidOf } from '../lib/shm/sysv.js';

let installed = false;

export function keepSpaceAtExit(indexKey: number): void {
  if (installed) return;
  installed = true;
  process.prependListener('exit', () => {
    for (const key of spaceKeys(indexKey)) {
      if (shmidOf(key) < 0) continue;
      try {
        Segment.attach(key);
      } catch {
        // removed meanwhile: nothing to keep
      }
    }
  });
}

function spaceKeys(indexKey: number): number[] {
  const keys = [indexKey];
  for (let slot = KEY_SLOT.CONFIG_FIRST; slot <= KEY_SLOT.CONFIG_LAST && indexKey + slot <= 0x7fffffff; slot++) keys.push(indexKey + slot);
  return keys;
}

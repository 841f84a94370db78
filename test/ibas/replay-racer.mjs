// A child process for test/ibas/replay-cache.test.ts. It runs the BUILT library (dist/, `npx tsc`
// first) without the TypeScript loader, as the other process-level shm tests do.
//
//   <key> <count>   attach the replay cache, wait for 'go' with a start time, spin until then,
//                   remember the same <count> nonces every racer derives (sha256 of the index),
//                   in the same order, and report which were new to it.
import crypto from 'node:crypto';
import { ReplayCache } from '../../dist/ibas/replay-cache.js';

const [key, count] = process.argv.slice(2).map(Number);
const cache = ReplayCache.attach(key);
if (!cache) throw new Error(`no replay cache at ${key}`);
const nonces = Array.from({ length: count }, (_, i) => crypto.createHash('sha256').update(String(i)).digest().subarray(0, 16));
process.send({ ready: true });
process.on('message', (m) => {
  while (performance.timeOrigin + performance.now() < m.at) { /* start together (sub-ms) */ }
  const now = Date.now();
  const fresh = [];
  for (let i = 0; i < count; i++) if (cache.remember(nonces[i], 'RACE', now + 60_000, now)) fresh.push(i);
  cache.detach();
  process.send({ fresh }, () => process.exit(0));
});

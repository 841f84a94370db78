/**
 * A worker gives the free pages of its C heap back to the kernel (glibc `malloc_trim(0)`, every
 * arena): once after start-up — compiling its modules leaves ~6 MB of freed parser and compiler
 * memory behind — and then every {@link HEAP_TRIM_MS} on a turn of its event loop, never inside a
 * transaction, for what V8's background threads (optimizing compiles, GC helpers) freed in their
 * own arenas. Each call takes well under a millisecond; without it a worker's RSS keeps a few MB it
 * does not use (issue 9: worker RSS ≤ 60 MB, measured by `npm run bench:ibas`).
 */
import { libc } from '../lib/native/libc.js';

/** Between two trims of a running worker. */
export const HEAP_TRIM_MS = 5000;

const mallocTrim = libc.func('int malloc_trim(size_t pad)') as unknown as (pad: number) => number;

/** Trim now and every {@link HEAP_TRIM_MS}; the timer never keeps the worker alive. Returns the stop. */
export function startHeapTrim(everyMs = HEAP_TRIM_MS): () => void {
  mallocTrim(0);
  const timer = setInterval(() => mallocTrim(0), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

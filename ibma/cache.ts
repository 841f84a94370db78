/**
 * The last good config on disk: `<home>/run/ibma_<node>.bundle.json`, written atomically
 * (write-file-atomic: temp file, fsync, rename) after every bundle the agent published, so that an
 * agent restarted while ibms is down still serves the config it had. Mode 0600.
 *
 * A cache that is unreadable, fails the schema, or belongs to another node is ignored with a
 * reason (the agent then waits for ibms); it is never half-trusted.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { errorText } from '../lib/errors.js';
import { parseJsonText, validate } from '../lib/config/load.js';
import { NodeBundle } from '../lib/config/model.js';
import type { Home } from '../lib/home.js';

interface WriteFileAtomic {
  sync(file: string, data: string | Buffer, opts?: { mode?: number; fsync?: boolean }): void;
}
// write-file-atomic ships no types; this is the one function the agent uses.
const writeFileAtomic = createRequire(import.meta.url)('write-file-atomic') as WriteFileAtomic;

export interface CachedBundle {
  bundle: NodeBundle;
  /** When the agent published it (ms since the epoch). */
  savedAt: number;
}

export function cacheFile(home: Home, node: string): string {
  return home.run(`ibma_${node}.bundle.json`);
}

export function saveCache(file: string, bundle: NodeBundle): void {
  writeFileAtomic.sync(file, `${JSON.stringify({ savedAt: Date.now(), bundle })}\n`, { mode: 0o600 });
}

export type LoadedCache = { ok: true; cached: CachedBundle } | { ok: false; reason: string };

export function loadCache(file: string, node: string): LoadedCache {
  if (!fs.existsSync(file)) return { ok: false, reason: `no cache file ${file}` };
  try {
    const raw = parseJsonText(fs.readFileSync(file, 'utf8'), file) as { savedAt?: unknown; bundle?: unknown } | null;
    if (!raw || typeof raw !== 'object') return { ok: false, reason: `${file} holds no object` };
    const bundle = validate(NodeBundle, raw.bundle, file);
    if (bundle.this_node !== node) return { ok: false, reason: `${file} holds the config of node ${bundle.this_node}, not ${node}` };
    const savedAt = typeof raw.savedAt === 'number' ? raw.savedAt : 0;
    return { ok: true, cached: { bundle, savedAt } };
  } catch (e) {
    return { ok: false, reason: errorText(e) };
  }
}

/**
 * The agent's disk cache (ibma/cache.ts), in process: a saved bundle loads back; a cache that is
 * corrupt, fails the schema or belongs to another node is ignored with a reason. (The package
 * install of lib/so-folder.ts: test/lib/so-folder.test.ts.)
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import { loadCache, saveCache } from '../../ibma/cache.js';

const bundle: NodeBundle = {
  epoch: 'E9',
  version: 12,
  this_node: 'N1',
  nodes: [{ node: 'N1', invalid: 0, hosts: [], kvs: { k: 'v' } }],
  apps: [],
};

t.test('save then load', async (t) => {
  const file = path.join(t.testdir(), 'c.json');
  saveCache(file, bundle);
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'the cache is private');
  const got = loadCache(file, 'N1');
  t.ok(got.ok);
  if (got.ok) {
    t.same(got.cached.bundle, bundle);
    t.ok(got.cached.savedAt > 0);
  }
  t.same(fs.readdirSync(path.dirname(file)), ['c.json'], 'no temp file left');
});

t.test('unusable caches are ignored with a reason', async (t) => {
  const dir = t.testdir();
  const cases: [string, string, RegExp][] = [
    ['missing', '', /no cache file/],
    ['garbage', '{"savedAt": 1, "bundle": ', /not valid JSON/],
    ['schema', JSON.stringify({ savedAt: 1, bundle: { ...bundle, version: 'x' } }), /key \/version/],
    ['other node', JSON.stringify({ savedAt: 1, bundle: { ...bundle, this_node: 'N2' } }), /node N2, not N1/],
    ['not an object', '42', /no object/],
  ];
  for (const [name, text, re] of cases) {
    const file = path.join(dir, `${name}.json`);
    if (text) fs.writeFileSync(file, text);
    const got = loadCache(file, 'N1');
    t.notOk(got.ok, name);
    if (!got.ok) t.match(got.reason, re, name);
  }
});

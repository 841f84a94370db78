// lib/config/ibma-index-key.ts: an ibas worker reads shm.index_key of ibma.conf without the schema
// validator. It must agree with the schema (lib/config/ibma-conf.ts) on that key — the same values
// accepted, the same refused, with the same error codes and key — and say what the full load says
// about a missing or unparsable file.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readIndexKey, INDEX_KEY_RANGE } from '../../lib/config/ibma-index-key.js';
import { loadConfigFile } from '../../lib/config/load.js';
import { IbmaConf } from '../../lib/config/ibma-conf.js';

const valid = {
  this_node: 'ECIF',
  ibms: { ip: '127.0.0.1', port: 18000 },
  credential: 'c'.repeat(32),
  comm: { min_compress_size: 4096 },
  ibac: { connecting_timeout: 2, retry_connect_timeval: 10 },
  shm: { index_key: 0x1234 },
  log: {},
};

function outcome(f: () => unknown): unknown {
  try {
    return { value: f() };
  } catch (e) {
    const err = e as { code?: string; params?: { key?: string } };
    return { code: err.code, key: err.params?.key };
  }
}

t.test('the same verdict as the schema on shm.index_key', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'ibma.conf');
  const cases: unknown[] = [1, 0x1234, INDEX_KEY_RANGE.maximum, 0, -5, INDEX_KEY_RANGE.maximum + 1, 1.5, '4660', null, undefined];
  for (const key of cases) {
    const conf = { ...valid, shm: key === undefined ? {} : { index_key: key } };
    fs.writeFileSync(file, `// the node agent\n${JSON.stringify(conf, null, 2)}\n`);
    const light = outcome(() => readIndexKey(file));
    const full = outcome(() => loadConfigFile(IbmaConf, file, 'ibma').shm.index_key);
    t.same(light, full, `index_key ${JSON.stringify(key)}: ${JSON.stringify(full)}`);
  }
});

t.test('a missing file, broken JSON, no shm section', async (t) => {
  const dir = t.testdir({ 'broken.conf': '{ "shm": { "index_key": 5, } ', 'noshm.conf': '/* no shm */ { "this_node": "X" }' });
  t.throws(() => readIndexKey(path.join(dir, 'missing.conf')), { code: 'IBP_ERR_CFG_NOT_FOUND' });
  t.throws(() => readIndexKey(path.join(dir, 'broken.conf')), { code: 'IBP_ERR_CFG_PARSE' });
  t.throws(() => readIndexKey(path.join(dir, 'noshm.conf')), { code: 'IBP_ERR_CFG_INVALID', params: { key: '/shm' } });
});

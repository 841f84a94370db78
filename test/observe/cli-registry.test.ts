/**
 * The operator's CLI against a registry: `ibms -s sessions` shows each agent's config version and
 * whether it is current, and a daemon stopping gracefully leaves the list at once;
 * add_app/update_app warn about (or with --strict refuse) a package that is missing, not ELF/JS,
 * or lacks somain.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { APPS_DIR, Cluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/procs.js';

t.test('ibms -s sessions: config version held and current; a stopped agent leaves at once', async (t) => {
  const c = await Cluster.start(t);
  await c.configure({ nodes: { AGT: [] }, apps: [], projects: [] });
  const agent = await c.agent('AGT');
  const sessions = async () => JSON.parse((await c.ibms(['-s', 'sessions', '--json'])).stdout) as Record<string, unknown>[];
  const row = await waitFor('the agent\'s session with its version', async () => (await sessions()).find((s) => s.role === 'ibma' && s.node === 'AGT' && s.pid !== 0 && s.version !== undefined), 20_000, 100);
  t.match(row, { current: true, version: row.current_version }, 'it holds the current version');
  const table = await c.ibms(['-s', 'sessions']);
  t.match(table.stdout, /CONFIG.*CURRENT/);
  t.match(table.stdout, /ibma.*AGT.*yes/);
  // a new version not yet taken: the same row says "no" for a moment — then the agent catches up
  await c.admin(['-a', 'download_config', '--node', 'AGT']);
  await waitFor('the agent current again on the new version', async () => (await sessions()).find((s) => s.node === 'AGT' && s.pid !== 0 && s.current === true && (s.version as number) > (row.version as number)), 20_000, 100);
  // add_app / update_app look at the package in so/
  const missing = await c.ibms(['-a', 'add_app', '--app', 'GHOST', '--desc', 'g', '--bin', 'ghost.so', '--timeout', '5']);
  t.equal(missing.code, 0, 'a missing package only warns');
  t.match(missing.stderr, /WARN : .*so\/ghost\.so does not exist/);
  const strict = await c.ibms(['-a', 'add_app', '--app', 'GHOST2', '--desc', 'g', '--bin', 'ghost.so', '--timeout', '5', '--strict']);
  t.equal(strict.code, 2, '--strict refuses');
  t.match(strict.stderr, /--bin.*does not exist.*\(--strict\)/);
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_nosomain.so'), path.join(c.registryHome, 'so', 'ghost.so'));
  const nosomain = await c.ibms(['-a', 'update_app', '--app', 'GHOST']);
  t.equal(nosomain.code, 0);
  t.match(nosomain.stderr, /WARN : .*ghost\.so does not export somain/);
  fs.writeFileSync(path.join(c.registryHome, 'so', 'ghost.so'), 'not a library');
  t.match((await c.ibms(['-a', 'update_app', '--app', 'GHOST', '--strict'])).stderr, /neither an ELF shared object nor a JavaScript module/);
  fs.copyFileSync(path.join(APPS_DIR, 'ibp_test_echo.so'), path.join(c.registryHome, 'so', 'ghost.so'));
  const good = await c.ibms(['-a', 'update_app', '--app', 'GHOST', '--strict']);
  t.equal(good.code, 0, good.stderr);
  t.notMatch(good.stderr, /WARN/);

  const stop = await agent.run('ibma', ['-a', 'stop']);
  t.equal(stop.code, 0, stop.stderr);
  // session.expire_seconds is 30: gone well before that
  await waitFor('the session gone at once', async () => (await sessions()).every((s) => s.node !== 'AGT' || s.pid === 0) ? true : undefined, 5000, 100);
  t.pass('the stopped agent left the list within 5 s (expire_seconds 30)');
});
